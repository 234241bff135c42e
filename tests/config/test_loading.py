"""Reading bridgeData: precedence of sources, and mistakes reported clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import MissingConfigFile, cli_settings, load_config
from horde_worker_regen.config.notes import COMPATIBILITY_NOTES


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(text)
    return path


def _problems(path: Path, environ: dict[str, str] | None = None, cli: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {}, cli or {})
    return str(caught.value)


def test_misspelt_key_is_rejected_with_the_nearest_valid_key(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "max_thread: 2\nallow_loras: true\n"))
    assert "unknown key 'max_thread'" in message
    assert "Did you mean 'max_threads'?" in message
    assert "unknown key 'allow_loras'" in message
    assert "Did you mean 'allow_lora'?" in message


def test_wrong_case_key_suggests_the_right_spelling(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "Max_Power: 16\n"))
    assert "Did you mean 'max_power'?" in message


def test_unrelated_key_points_at_the_template(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "favourite_colour: blue\n"))
    assert "unknown key 'favourite_colour'" in message
    assert "bridgeData_template.yaml" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "max_threads: 20",
            "max_threads: 20 is not valid (Input should be less than or equal to 16);"
            " allowed: a whole number from 1 to 16.",
        ),
        ("queue_size: -1", "queue_size: -1 is not valid"),
        ("max_power: 1000", "allowed: a whole number from 1 to 512"),
        ("max_batch: lots", "max_batch: 'lots' is not valid"),
        ("nsfw: perhaps", "allowed: true or false"),
        ("horde_model_stickiness: 2", "allowed: a number from 0.0 to 1.0"),
        ("max_lora_cache_size: 5", "allowed: a whole number from 10 to 2048"),
        ("horde_url: aihorde.net", "must start with http:// or https://"),
        ("priority_usernames: [db0]", "alias#id"),
        ("job_retries: 5", "job_retries: 5 is not valid (Input should be less than or equal to 3)"),
        ("fault_breaker_cooldown: -5", "allowed: a whole number from 0 to 10080"),
        ("quarantine_model_after_strikes: 0", "allowed: a whole number from 1 to 10"),
        ("recycle_process_after_jobs: -1", "recycle_process_after_jobs: -1 is not valid"),
        ("recycle_process_above_rss_mib: lots", "recycle_process_above_rss_mib: 'lots' is not valid"),
        ("fake_backend: {memory_growth_mib_per_job: 5000}", "memory_growth_mib_per_job: 5000 is not valid"),
    ],
)
def test_invalid_value_names_key_value_and_range(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in _problems(_write(tmp_path, line + "\n"))


def test_invalid_api_key_value_is_not_echoed(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "api_key: ' secretish-key-with-spaces '\n"))
    assert "api_key: <redacted> is not valid" in message
    assert "secretish" not in message


def test_custom_model_mistake_names_the_entry(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "custom_models:\n  - name: Mine\n    path: /x.safetensors\n"))
    assert "custom_models.0.filepath" in message
    assert "custom_models.0.path" in message


def test_painting_without_img2img_is_explained_not_rewritten(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "allow_img2img: false\nallow_painting: true\n"))
    assert "allow_painting: true needs allow_img2img: true" in message


def test_default_painting_with_img2img_off_gets_a_note(tmp_path: Path) -> None:
    resolved = load_config(_write(tmp_path, "allow_img2img: false\n"), {})
    notes = {note.key: note.message for note in resolved.notes}
    assert "allow_img2img is false" in notes["allow_painting"]


def test_sdxl_controlnet_without_controlnet_is_rejected(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "allow_sdxl_controlnet: true\n"))
    assert "allow_sdxl_controlnet: true needs allow_controlnet: true" in message


def test_compatibility_keys_get_a_one_line_note(tmp_path: Path) -> None:
    resolved = load_config(_write(tmp_path, "high_memory_mode: true\ndynamic_models: true\n"), {})
    notes = [(note.key, note.message) for note in resolved.notes]
    assert ("high_memory_mode", COMPATIBILITY_NOTES["high_memory_mode"]) in notes
    assert ("dynamic_models", COMPATIBILITY_NOTES["dynamic_models"]) in notes
    notes_of = dict(notes)
    assert all("\n" not in message for message in notes_of.values())


def test_two_spellings_of_one_key_are_rejected(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "dreamer_name: A\nworker_name: B\n"))
    assert "both set dreamer_name" in message


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "max_threads: 1\nnsfw: true\nmax_threads: 2\n"))
    assert "key 'max_threads' appears twice (lines 1 and 3)" in message


def test_backslash_in_a_comment_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "# models live in D:\\horde\\models\ncache_home: 'D:\\horde\\models'\n")
    assert str(load_config(path, {}).data.cache_home) == "D:\\horde\\models"


def test_backslash_escape_in_double_quotes_explains_the_fix(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, 'cache_home: "D:\\horde\\models"\n'))
    assert "line 1" in message
    assert "single quotes" in message


def test_tab_indentation_is_explained(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, "models_to_load:\n\t- Deliberate\n"))
    assert "line 2" in message


def test_missing_file_gives_the_next_step(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigFile) as caught:
        load_config(tmp_path / "bridgeData.yaml", {})
    message = str(caught.value)
    assert "no config file at" in message
    assert "bridgeData_template.yaml" in message
    assert "AIWORKER_* env vars" in message and "--set" in message


def test_environment_alone_is_enough_without_a_file(tmp_path: Path) -> None:
    resolved = load_config(tmp_path / "absent.yaml", {"AIWORKER_API_KEY": "k" * 22, "AIWORKER_MAX_POWER": "32"})
    assert not resolved.file_found
    assert resolved.data.max_power == 32


def test_cli_flags_alone_are_enough_without_a_file(tmp_path: Path) -> None:
    resolved = load_config(tmp_path / "absent.yaml", {}, cli_settings([f"api_key={'k' * 22}"], name="Flags Only"))
    assert not resolved.file_found
    assert resolved.data.dreamer_name == "Flags Only"


def test_env_overrides_file_and_cli_overrides_env(tmp_path: Path) -> None:
    path = _write(tmp_path, "dreamer_name: From File\nmax_threads: 1\nqueue_size: 0\nmax_batch: 2\n")
    environ = {"AIWORKER_DREAMER_NAME": "From Env", "AIWORKER_MAX_THREADS": "2", "AIWORKER_QUEUE_SIZE": "3"}
    resolved = load_config(path, environ, cli_settings(["queue_size=4"], name="From CLI"))
    data = resolved.data
    assert (data.dreamer_name, data.max_threads, data.queue_size, data.max_batch) == ("From CLI", 2, 4, 2)
    assert resolved.source_of("dreamer_name") == "cli -n"
    assert resolved.source_of("max_threads") == "env AIWORKER_MAX_THREADS"
    assert resolved.source_of("queue_size") == "cli --set queue_size"
    assert resolved.source_of("max_batch") == "file bridgeData.yaml"
    assert resolved.source_of("nsfw") == "default"


def test_env_values_keep_their_types(tmp_path: Path) -> None:
    environ = {
        "AIWORKER_API_KEY": "0000000000",
        "AIWORKER_DREAMER_NAME": "12345",
        "AIWORKER_MODELS_TO_LOAD": "['TOP 3', 'Deliberate']",
        "AIWORKER_BLACKLIST": "spider, clown",
        "AIWORKER_NSFW": "false",
        "AIWORKER_IMAGE_MODELS_TO_SKIP": "ALL SDXL",
    }
    data = load_config(tmp_path / "absent.yaml", environ).data
    assert data.api_key.get_secret_value() == "0000000000"
    assert data.dreamer_name == "12345"
    assert data.models_to_load == ["TOP 3", "Deliberate"]
    assert data.blacklist == ["spider", "clown"]
    assert data.nsfw is False
    assert data.models_to_skip == ["ALL SDXL"]


def test_misspelt_env_var_is_rejected_with_suggestion(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, ""), {"AIWORKER_MAX_THREAD": "2"})
    assert "unknown key 'AIWORKER_MAX_THREAD' in the environment" in message
    assert "AIWORKER_MAX_THREADS" in message


def test_unknown_set_key_is_rejected(tmp_path: Path) -> None:
    message = _problems(_write(tmp_path, ""), cli={"max_treads": "2"})
    assert "unknown key 'max_treads' in --set" in message
    assert "max_threads" in message


def test_set_without_equals_is_explained() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cli_settings(["max_threads"], None)


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, ""), {}).data.max_threads == 1


def test_a_list_at_top_level_is_rejected(tmp_path: Path) -> None:
    assert "mapping of key: value" in _problems(_write(tmp_path, "- a\n- b\n"))
