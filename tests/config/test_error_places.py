"""Configuration mistakes point at the place to fix: the env var, the flag, the file's line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config, parse_text_value
from horde_worker_regen.config.yaml_file import read_yaml_mapping
from tests.support import SECRET_API_KEY


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, environ: dict[str, str] | None = None, cli: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {}, cli or {})
    return caught.value


def test_an_invalid_env_value_names_the_variable_not_the_file(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, "max_power: 8\n"), {"AIWORKER_MAX_THREADS": "20"})
    assert error.problems == [
        "AIWORKER_MAX_THREADS: '20' is not valid (Input should be less than or equal to 16); "
        "allowed: a whole number from 1 to 16."
    ]
    assert error.source == "AIWORKER_* environment variables"
    assert "bridgeData.yaml" not in str(error)


def test_an_invalid_nested_env_value_names_the_variable_and_the_entry(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ""), {"AIWORKER_GPU_DEVICE_OVERRIDES": "{0: {max_threads: 99}}"})
    assert error.problems[0].startswith("AIWORKER_GPU_DEVICE_OVERRIDES (at gpu_device_overrides.0.max_threads): 99")


def test_an_invalid_flag_names_the_flag(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ""), cli={"max_batch": "lots"})
    assert error.problems[0].startswith("--set max_batch: 'lots' is not valid")
    assert error.source == "the command line"


def test_mistakes_in_file_and_env_name_both_places(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, "max_power: 9000\n"), {"AIWORKER_QUEUE_SIZE": "-1"})
    assert error.source == f"{tmp_path / 'bridgeData.yaml'} and AIWORKER_* environment variables"
    assert {line.split(":")[0] for line in error.problems} == {"max_power", "AIWORKER_QUEUE_SIZE"}


def test_a_value_from_the_file_still_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "max_threads: 20\n")
    error = _error(path)
    assert error.source == str(path)
    assert error.problems[0].startswith("max_threads: 20 is not valid")


def test_an_unset_required_secret_is_reported_as_not_set(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, "dashboard_host: 0.0.0.0\n"))
    assert error.problems[0].startswith("dashboard_token is not set: a token is required because dashboard_host")
    assert "<redacted>" not in str(error) and "is not valid" not in str(error)


def test_a_secret_set_to_nothing_is_not_set_and_a_bad_one_stays_hidden(tmp_path: Path) -> None:
    assert "api_key is not set" in str(_error(_write(tmp_path, "api_key: ''\n")))
    message = str(_error(_write(tmp_path, "dashboard_token: hunter2\n")))
    assert "dashboard_token: <redacted> is not valid" in message and "hunter2" not in message


def test_a_key_that_looks_like_a_yaml_list_is_taken_as_text(tmp_path: Path) -> None:
    key = "[" + SECRET_API_KEY[1:]
    resolved = load_config(_write(tmp_path, ""), {"AIWORKER_API_KEY": key}, {})
    assert resolved.data.api_key.get_secret_value() == key


def test_a_broken_env_list_names_the_variable(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ""), {"AIWORKER_MODELS_TO_LOAD": "['TOP 2'", "AIWORKER_API_KEY": "[" + "x" * 21})
    assert error.problems == [
        "AIWORKER_MODELS_TO_LOAD: \"['TOP 2'\" is not a valid YAML list or mapping (e.g. ['a', 'b'])."
    ]


@given(st.text(max_size=40))
def test_text_for_a_plain_text_field_is_never_reinterpreted(text: str) -> None:
    assert parse_text_value("dreamer_name", text) == text
    assert parse_text_value("api_key", text, "AIWORKER_API_KEY") == text


# --- YAML syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "plain", "quoted"),
    [
        ("max_threads: 1\nmax_power: 8: 16\n", "line 2, column 13", "a ':' where none can be", "max_power: 8: 16"),
        ("nsfw: true\nmax_power\nmax_batch: 2\n", "line 3, column 1", "a line without its ':'", "max_power"),
        (
            "dreamer_name: 'My Dreamer\nnsfw: true\n",
            "at the end of the file",
            "a quote that is never closed",
            "dreamer_name: 'My Dreamer",
        ),
        (
            'cache_home: "D:\\horde\\models"\n',
            "line 1, column 17",
            "a backslash in double quotes",
            'cache_home: "D:\\horde\\models"',
        ),
        (
            "models_to_load: ['TOP 2'\nnsfw: true\n",
            "line 2, column 1",
            "a list opened with '['",
            "models_to_load: ['TOP 2'",
        ),
    ],
)
def test_a_yaml_syntax_error_shows_file_line_column_and_the_line(
    tmp_path: Path, text: str, where: str, plain: str, quoted: str
) -> None:
    error = _error(_write(tmp_path, text))
    [problem] = error.problems
    assert problem.startswith(f"bridgeData.yaml, {where}")
    assert plain in problem and "YAML says:" in problem
    assert f"| {quoted}\n" in problem + "\n"


def test_a_tab_is_pointed_at_and_explained(tmp_path: Path) -> None:
    [problem] = _error(_write(tmp_path, "models_to_load:\n\t- TOP 2\n")).problems
    assert problem.startswith("bridgeData.yaml, line 2, column 1") and "spaces, not tabs" in problem


def test_a_yaml_error_on_a_secret_line_never_shows_the_secret(tmp_path: Path) -> None:
    for text in (f'api_key: "{SECRET_API_KEY}\\q"\n', f"api_key: *{SECRET_API_KEY}\n"):
        message = str(_error(_write(tmp_path, text)))
        assert "line 1" in message and "api_key: <redacted>" in message
        assert SECRET_API_KEY not in message


def test_a_control_character_is_pointed_at(tmp_path: Path) -> None:
    [problem] = _error(_write(tmp_path, "nsfw: true\nmax_power: 8\x07\n")).problems
    assert problem.startswith("bridgeData.yaml, line 2, column 13: a control character (code 0x07)")


_YAMLISH = st.text(alphabet=st.sampled_from(list("ab:-'\"[]{}#,*&!|> \n\t\\1")), max_size=60)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(text=_YAMLISH)
def test_every_yaml_syntax_error_points_at_a_real_line_of_the_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError:
        with pytest.raises(ConfigError) as caught:
            read_yaml_mapping(path)
        problem = caught.value.problems[0]
        lines = text.splitlines()
        found = re.match(r"bridgeData\.yaml, line (\d+), column (\d+): ", problem)
        if found is None:
            assert problem.startswith(f"bridgeData.yaml, at the end of the file (line {len(lines)})")
            return
        number = int(found.group(1))
        assert 1 <= number <= len(lines)
        assert f"{number:>5} | {lines[number - 1].rstrip(chr(13)).expandtabs(1)}" in problem
    except yaml.YAMLError:
        return  # not a syntax error of the file's text (e.g. a duplicate key is reported elsewhere)
