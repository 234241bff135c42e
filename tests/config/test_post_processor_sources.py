"""`post_processor_sources`: mirrors for the level-13 post-processors' files, checked as the other keys are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError, describe_validation_error
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.config.post_processor_sources import SOURCE_KEYS, PostProcessorSource

SHA = "07a7ccd6443d012d528999cd77e40c7d265aaf1f656c499b37936e49603a0b1d"
GOOD_URLS = ("http://cache.lan/4xNomos8kSC.pth", "https://mirror.example:8443/m/x.pth?token=abc", "http://10.0.0.2/f")
BAD_URLS = (
    "ftp://cache.lan/x.pth", "cache.lan/x.pth", "http://", "http:///x.pth", " http://cache.lan/x", "http://a b/x",
    "http://cache.lan:99999/x", "http://[::1/x", "file:///srv/x.pth", "", "http://cache.lan/\x00",
)  # fmt: skip


def _problems_expected(sources: dict[str, Any]) -> set[tuple[str, str]]:
    """What a correct validator refuses in `sources`: (key, what) pairs, worked out from how they were made."""
    problems = set()
    for key, value in sources.items():
        if key not in SOURCE_KEYS:
            problems.add((key, "key"))
        if not isinstance(value, dict):
            problems.add((key, "entry"))
            continue
        if value.get("url") not in GOOD_URLS:
            problems.add((key, "url"))
        sha = value.get("sha256")
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)):
            problems.add((key, "sha256"))
        problems |= {(key, extra) for extra in set(value) - {"url", "sha256"}}
    return problems


_KEYS = st.one_of(
    st.sampled_from(SOURCE_KEYS), st.sampled_from(SOURCE_KEYS).map(str.lower), st.text(min_size=1, max_size=12)
)
_SHAS = st.one_of(
    st.none(),
    st.sampled_from([SHA, SHA.upper()]),
    st.text(alphabet="0123456789abcdefg", min_size=60, max_size=66),
)
_ENTRIES = st.one_of(
    st.builds(
        lambda url, sha, extra: {"url": url, **({"sha256": sha} if sha is not None else {}), **extra},
        st.sampled_from(GOOD_URLS + BAD_URLS),
        _SHAS,
        st.sampled_from([{}, {}, {"sha": "x"}]),
    ),
    st.sampled_from(["http://cache.lan/x.pth", 7, None, ["http://cache.lan/x.pth"]]),
)


@given(st.dictionaries(_KEYS, _ENTRIES, max_size=4))
def test_sources_are_accepted_exactly_when_valid_and_each_mistake_is_named(sources: dict[str, Any]) -> None:
    expected = _problems_expected(sources)
    try:
        accepted = BridgeData(post_processor_sources=sources).post_processor_sources
    except ValidationError as error:
        lines = describe_validation_error(error, {})
        assert expected, lines
        for key, what in expected:
            place = f"post_processor_sources.{key}" + ("" if what in ("key", "entry") else f".{what}")
            line = next(line for line in lines if line.startswith((f"{place}:", f"{place} ")))
            if what == "key":  # the key, the value and what is allowed
                assert f"{key!r} is not valid" in line and all(known in line for known in SOURCE_KEYS)
            elif what in ("url", "sha256"):
                assert line.startswith(f"{place} is missing") or f"{sources[key][what]!r}"[:20] in line
        assert len(lines) == len(expected)
        return
    assert not expected
    assert set(accepted) <= set(SOURCE_KEYS)
    for key, source in accepted.items():
        written = sources[key].get("sha256")
        assert (source.url, source.sha256) == (sources[key]["url"], written.lower() if written else None)


def _file(tmp_path: Path, settings: dict[str, Any]) -> Path:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_a_file_s_sources_are_loaded_with_lower_case_hashes(tmp_path: Path, clean_env: None) -> None:
    written = {
        "post_processor_sources": {
            "4xNomos8kSC": {"url": GOOD_URLS[0], "sha256": SHA.upper()},
            "face_detection": {"url": GOOD_URLS[2]},
        }
    }
    data = load_config(_file(tmp_path, written), {}).data
    assert data.post_processor_sources == {
        "4xNomos8kSC": PostProcessorSource(url=GOOD_URLS[0], sha256=SHA),
        "face_detection": PostProcessorSource(url=GOOD_URLS[2]),
    }


def test_an_empty_key_means_no_sources(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "bridgeData.yaml"
    path.write_text("post_processor_sources:\n", encoding="utf-8")
    assert load_config(path, {}).data.post_processor_sources == {}


def test_every_mistake_is_reported_at_once_with_its_place(tmp_path: Path, clean_env: None) -> None:
    written = {
        "post_processor_sources": {
            "4xNomos8ksc": {"url": GOOD_URLS[0]},
            "RestoreFormer": {"url": "ftp://cache.lan/r.pth", "sha256": "abc"},
            "face_parsing": "http://cache.lan/p.pth",
        }
    }
    with pytest.raises(ConfigError) as caught:
        load_config(_file(tmp_path, written), {})
    problems = caught.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("post_processor_sources.4xNomos8ksc: '4xNomos8ksc' is not valid")
    assert "did you mean '4xNomos8kSC'?" in problems[0] and "face_detection, face_parsing" in problems[0]
    assert problems[1].startswith("post_processor_sources.RestoreFormer.url: 'ftp://cache.lan/r.pth' is not valid")
    assert problems[2].startswith("post_processor_sources.RestoreFormer.sha256: 'abc' is not valid: must be a sha256")
    assert problems[3].startswith("post_processor_sources.face_parsing: 'http://cache.lan/p.pth' is not valid")
    assert "mapping with url" in problems[3]


def test_an_env_var_sets_them_and_its_mistakes_name_it(tmp_path: Path, clean_env: None) -> None:
    path = _file(tmp_path, {})
    environ = {"AIWORKER_POST_PROCESSOR_SOURCES": f"{{RestoreFormer: {{url: '{GOOD_URLS[0]}'}}}}"}
    assert load_config(path, environ).data.post_processor_sources == {
        "RestoreFormer": PostProcessorSource(url=GOOD_URLS[0])
    }
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"AIWORKER_POST_PROCESSOR_SOURCES": "{RestoreFormer: {url: nowhere}}"})
    assert caught.value.problems[0].startswith(
        "AIWORKER_POST_PROCESSOR_SOURCES (at post_processor_sources.RestoreFormer.url): 'nowhere' is not valid"
    )
