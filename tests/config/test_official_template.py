"""An operator's bridgeData.yaml from the official worker loads here unchanged, every key accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import accepted_keys, load_config
from horde_worker_regen.config.notes import ALCHEMIST_NOTE, CAPTION_OFF_NOTE, SCRIBE_NOTE
from horde_worker_regen.config.roles import HORDE_FORM_NAMES, POST_PROCESS_GROUP, normalise_forms, served_form_names
from horde_worker_regen.shared.post_processors import KNOWN_POST_PROCESSORS
from tests.support import FIXTURES, SECRET_API_KEY
from tests.test_cli import run_cli

OFFICIAL_TEMPLATE = FIXTURES / "official_bridgeData_template_10.1.1.yaml"
# The 10.1.1 template's top-level keys, in file order.
OFFICIAL_KEYS = [
    "horde_url", "api_key", "priority_usernames", "max_threads", "queue_size", "max_batch", "safety_on_gpu",
    "require_upfront_kudos", "remove_maintenance_on_init", "limited_console_messages", "dreamer_name", "max_power",
    "high_memory_mode", "high_performance_mode", "moderate_performance_mode", "post_process_job_overlap",
    "unload_models_from_vram_often", "very_fast_disk_mode", "blacklist", "nsfw", "censor_nsfw", "censorlist",
    "allow_painting", "allow_unsafe_ip", "allow_post_processing", "allow_controlnet", "allow_sdxl_controlnet",
    "allow_lora", "purge_loras_on_download", "max_lora_cache_size", "extra_slow_worker", "limit_max_steps",
    "dynamic_models", "number_of_dynamic_models", "max_models_to_download", "stats_output_frequency", "cache_home",
    "temp_dir", "always_download", "disable_terminal_ui", "vram_to_leave_free", "ram_to_leave_free",
    "disable_disk_cache", "models_to_load", "load_large_models", "models_to_skip", "suppress_speed_warnings",
    "exit_on_unhandled_faults", "scribe_name", "kai_url", "max_length", "max_context_length", "branded_model",
    "alchemist_name", "forms",
]  # fmt: skip
SCRIBE = ["scribe_name", "kai_url", "max_length", "max_context_length", "branded_model"]
OPERATOR_ENV = {"AIWORKER_API_KEY": SECRET_API_KEY, "AIWORKER_DREAMER_NAME": "Migrated Dreamer"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(text)
    return path


def test_the_fixture_holds_the_official_keys_in_order() -> None:
    assert list(yaml.safe_load(OFFICIAL_TEMPLATE.read_text())) == OFFICIAL_KEYS
    assert len(OFFICIAL_KEYS) == 55


def test_every_official_key_is_accepted() -> None:
    assert set(OFFICIAL_KEYS) <= set(accepted_keys())


def test_the_official_template_loads_with_one_notice_per_other_role(clean_env: None) -> None:
    resolved = load_config(OFFICIAL_TEMPLATE, OPERATOR_ENV, {})
    assert resolved.data.dreamer_name == "Migrated Dreamer"
    assert resolved.data.forms == ["caption", "nsfw", "interrogation", POST_PROCESS_GROUP]
    role_notes = [note for note in resolved.notes if note.message in (SCRIBE_NOTE, ALCHEMIST_NOTE)]
    assert [(note.key.split(", "), note.message) for note in role_notes] == [
        (SCRIBE, SCRIBE_NOTE),
        (["alchemist_name", "forms"], ALCHEMIST_NOTE),
    ]


def test_check_config_accepts_the_official_template_filled_in_by_flags(tmp_path: Path) -> None:
    (tmp_path / "bridgeData.yaml").write_text(OFFICIAL_TEMPLATE.read_text())
    result = run_cli(
        "check-config", "--no-models", "--set", f"api_key={SECRET_API_KEY}", "-n", "Migrated Dreamer", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unknown key" not in result.stdout + result.stderr
    assert SECRET_API_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize("key", [*SCRIBE, "alchemist_name", "forms"])
def test_each_key_refused_before_is_accepted_on_its_own(tmp_path: Path, key: str) -> None:
    value = yaml.safe_load(OFFICIAL_TEMPLATE.read_text())[key]
    resolved = load_config(_write(tmp_path, yaml.safe_dump({key: value})), {})
    assert resolved.source_of(key) == "file bridgeData.yaml"


# --- The alchemist's keys are checked now --------------------------------------------------------------


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), {})
    return str(caught.value)


def test_forms_are_normalised_as_the_official_worker_does(tmp_path: Path) -> None:
    data = load_config(_write(tmp_path, "forms: [Post-Process, GFPGAN, Strip-Background, caption, CAPTION]\n"), {}).data
    assert data.forms == ["post_process", "gfpgan", "strip_background", "caption"]


@pytest.mark.parametrize("written", ["forms: []\n", "forms:\n"])
def test_no_forms_means_the_official_defaults(tmp_path: Path, written: str) -> None:
    assert load_config(_write(tmp_path, written), {}).data.forms == ["caption", "nsfw", "interrogation", "post_process"]


def test_an_unknown_form_is_refused_with_the_closest_one(tmp_path: Path) -> None:
    message = _refusal(tmp_path, "forms: [captoin, nsfw]\n")
    assert "unknown alchemy form 'captoin' (did you mean 'caption'?)" in message


def test_the_alchemist_needs_a_name_of_its_own(tmp_path: Path) -> None:
    message = _refusal(tmp_path, "alchemist: true\ndreamer_name: Twin\nalchemist_name: twin\n")
    assert "alchemist_name and dreamer_name are both 'Twin'" in message
    same_name_unused = load_config(_write(tmp_path, "dreamer_name: Twin\nalchemist_name: Twin\n"), {})
    assert same_name_unused.data.alchemist is False


def test_dreamer_false_is_refused_without_the_alchemist(tmp_path: Path) -> None:
    assert "dreamer: false with alchemist off would leave this worker nothing" in _refusal(tmp_path, "dreamer: false\n")
    alchemy_only = load_config(_write(tmp_path, "dreamer: false\nalchemist: true\n"), {}).data
    assert (alchemy_only.dreamer, alchemy_only.alchemist) == (False, True)


def test_a_migrated_file_does_not_turn_alchemy_on(tmp_path: Path) -> None:
    """The official template's alchemist section (a placeholder there) is checked and noted; alchemy stays off."""
    text = 'alchemist_name: "My Alchemist"\nforms: [caption, post-process]\n'
    resolved = load_config(_write(tmp_path, text), {})
    assert resolved.data.alchemist is False
    assert [note.key for note in resolved.notes if note.message == ALCHEMIST_NOTE] == ["alchemist_name, forms"]


def test_with_the_alchemist_on_caption_needs_its_own_switch(tmp_path: Path) -> None:
    resolved = load_config(_write(tmp_path, "alchemist: true\nforms: [caption, nsfw]\n"), {})
    assert [note.key for note in resolved.notes if note.message == CAPTION_OFF_NOTE] == ["forms"]
    assert ALCHEMIST_NOTE not in [note.message for note in resolved.notes]
    enabled = load_config(_write(tmp_path, "alchemist: true\nalchemy_caption_enabled: true\n"), {})
    assert CAPTION_OFF_NOTE not in [note.message for note in enabled.notes]


def test_served_form_names_are_the_horde_s_spelling() -> None:
    names = served_form_names(normalise_forms(["nsfw", "realesrgan-x4plus", "post-process", "4xnomos8ksc"]))
    assert names[:3] == ("nsfw", "RealESRGAN_x4plus", "2xModernSpanimationV1")
    assert set(names[1:]) == set(KNOWN_POST_PROCESSORS) and len(names) == len(set(names))


def test_the_beta_keys_are_accepted_and_checked(tmp_path: Path) -> None:
    text = (
        "dreamer: true\nalchemist: true\nalchemy_caption_enabled: true\nalchemy_allow_concurrent: false\n"
        "alchemy_max_concurrency: 2\nalchemy_vram_headroom_mb: 4096\n"
    )
    resolved = load_config(_write(tmp_path, text), {})
    assert (resolved.data.alchemist, resolved.data.alchemy_max_concurrency) == (True, 2)
    assert [note.key for note in resolved.notes if note.key.startswith("alchemy_")] == ["alchemy_vram_headroom_mb"]
    assert "alchemy_max_concurrency: 0 is not valid" in _refusal(tmp_path, "alchemy_max_concurrency: 0\n")
    assert "alchemy_vram_headroom_mb: -1 is not valid" in _refusal(tmp_path, "alchemy_vram_headroom_mb: -1\n")


def test_the_beta_defaults_are_the_beta_worker_s() -> None:
    data = BridgeData()
    assert (
        data.dreamer,
        data.alchemist,
        data.alchemy_caption_enabled,
        data.alchemy_allow_concurrent,
        data.alchemy_max_concurrency,
        data.alchemy_vram_headroom_mb,
    ) == (True, False, False, True, 1, 2000)


_FORM_SPELLINGS = st.sampled_from([*HORDE_FORM_NAMES.values(), "post-process", "Post_Process", "CAPTION"])


@given(st.lists(st.one_of(_FORM_SPELLINGS, st.text(max_size=12)), max_size=6))
def test_normalised_forms_are_known_unique_and_stable(written: list[str]) -> None:
    try:
        forms = normalise_forms(written)
    except ValueError as error:
        assert "unknown alchemy form" in str(error)
        return
    assert forms and len(set(forms)) == len(forms)
    assert set(forms) <= {*HORDE_FORM_NAMES, POST_PROCESS_GROUP}
    assert normalise_forms(forms) == forms
