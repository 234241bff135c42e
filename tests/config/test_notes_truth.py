"""The compatibility notes say what the code really does with each key, and start-up logs them quietly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from horde_worker_regen.commands.run import _report_config
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.config.notes import (
    COMPATIBILITY_NOTES,
    HORDELIB_KNOBS,
    NO_EFFECT_NOTES,
    EffectNote,
    notes_summary,
)
from horde_worker_regen.config.roles import ALCHEMIST_KEYS, SCRIBE_KEYS
from horde_worker_regen.horde.pop import build_pop_request
from horde_worker_regen.inference.hordelib_settings import HordelibSettings
from tests.config.test_official_template import OFFICIAL_TEMPLATE, OPERATOR_ENV
from tests.support import REPO_ROOT

PACKAGE = REPO_ROOT / "horde_worker_regen"
# What each hordelib knob visibly changes: the ComfyUI option, or the hordelib setting, its note names.
KNOB_EFFECT = {
    "high_memory_mode": "--highvram",
    "very_high_memory_mode": "--gpu-only",
    "unload_models_from_vram_often": "disable_smart_memory",
}


def _flipped(key: str) -> Any:
    default = BridgeData.model_fields[key].get_default(call_default_factory=True)
    if isinstance(default, bool):
        return not default
    return {
        "number_of_dynamic_models": 3,
        "max_models_to_download": 2,
        "ram_to_leave_free": "10%",
        "vram_to_leave_free": 1024,
        "temp_dir": "/srv/tmp",
    }[key]


def _observed(data: BridgeData) -> tuple[Any, ...]:
    """What the worker does with a configuration: hordelib's start-up options and the pop it sends."""
    settings = HordelibSettings.from_bridge_data(data, slot=0, device_index=0)
    pop = build_pop_request(data, ["Deliberate"], "agent:1:x").model_dump()
    return settings, tuple(settings.comfyui_args(has_gpu=True)), tuple(sorted(pop.items()))


@pytest.mark.parametrize("key", sorted(COMPATIBILITY_NOTES))
def test_each_note_matches_what_the_key_changes(key: str, tmp_path: Path) -> None:
    base = BridgeData(cache_home=tmp_path)
    changed = base.model_copy(update={key: _flipped(key)})
    if key in HORDELIB_KNOBS:
        assert _observed(changed) != _observed(base)
        assert KNOB_EFFECT[key] in COMPATIBILITY_NOTES[key]
        settings = HordelibSettings.from_bridge_data(changed, slot=0, device_index=0)
        effects = set(settings.comfyui_args(has_gpu=True))
        if settings.disable_smart_memory != HordelibSettings.from_bridge_data(base, 0, 0).disable_smart_memory:
            effects.add("disable_smart_memory")
        assert KNOB_EFFECT[key] in effects
    else:
        assert _observed(changed) == _observed(base)
        assert NO_EFFECT_NOTES[key].startswith("has no effect")


@pytest.mark.parametrize("key", sorted(NO_EFFECT_NOTES))
def test_no_code_reads_a_key_noted_as_without_effect(key: str) -> None:
    """If a module starts using one of these keys, its note must change with it."""
    reader = re.compile(rf"\.{key}\b")
    readers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "config" and reader.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_every_knob_of_the_official_worker_has_a_true_note() -> None:
    assert set(HORDELIB_KNOBS).isdisjoint(NO_EFFECT_NOTES)
    assert all(note.endswith(".") and "\n" not in note for note in COMPATIBILITY_NOTES.values())


def test_high_memory_mode_with_unloading_on_gets_a_note(tmp_path: Path) -> None:
    path = tmp_path / "bridgeData.yaml"
    path.write_text("high_memory_mode: true\n")
    assert any(
        "unload_models_from_vram_often: true" in note.message and note.key == "high_memory_mode"
        for note in load_config(path, {}).notes
    )
    path.write_text("high_memory_mode: true\nunload_models_from_vram_often: false\n")
    assert [note.key for note in load_config(path, {}).notes].count("high_memory_mode") == 1


def test_the_summary_counts_every_noted_key_once() -> None:
    notes = [EffectNote("dynamic_models", "x."), EffectNote("scribe_name, kai_url", "y.")]
    summary = notes_summary(notes)
    assert summary is not None and summary.startswith("3 settings") and "\n" not in summary
    assert notes_summary([]) is None


def test_start_up_logs_one_info_line_for_all_the_notes(clean_env: None) -> None:
    resolved = load_config(OFFICIAL_TEMPLATE, OPERATOR_ENV, {})
    assert len(resolved.notes) > 8
    levels: list[str] = []
    handler = logger.add(lambda message: levels.append(message.record["level"].name), level="TRACE")
    try:
        _report_config(resolved)
    finally:
        logger.remove(handler)
    # The source line, the one notes summary and the worker line; each note at DEBUG.
    assert levels.count("INFO") == 3
    assert levels.count("DEBUG") == len(resolved.notes)


def test_the_compatibility_page_covers_every_noted_key() -> None:
    page = (REPO_ROOT / "docs" / "config-compatibility.md").read_text(encoding="utf-8")
    for key in (*COMPATIBILITY_NOTES, *SCRIBE_KEYS, *ALCHEMIST_KEYS, "dreamer", "allow_private_source_urls"):
        assert f"`{key}`" in page, key
