"""`inject_trigger` on a fetched LoRA: hordelib's own trigger lookup, fed the words the main process stored.

`HordeLib.basic_inference` picks the trigger with these manager calls ("any": `random.choice` of
`get_lora_triggers`, "all": all of them joined by ", ", anything else: `find_lora_trigger`) and puts
it first in the positive prompt; the real-hordelib test shows the prompt that results.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from horde_worker_regen.inference.hordelib_extras import local_extras, register
from tests.inference.test_hordelib_extras import _bare_managers, _files

TRIGGERS = ("pixel art style", "8bit", "Chibi Character")


def _registered_lora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, triggers: tuple[str, ...]) -> tuple[object, str]:
    lora, ti = _bare_managers(tmp_path, monkeypatch)
    loras, tis, spec = _files(tmp_path)
    extras = local_extras(replace(spec, lora_triggers={"Style": triggers}), loras, tis)
    register(lora, ti, extras)
    return lora, extras.loras[0]["name"]


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("8BIT", "8BIT"),  # the same word, any case: the request's own spelling
        ("pixel art", "pixel art style"),  # contained in a trigger
        ("chibi charactr", "Chibi Character"),  # fuzzy (ratio above 65)
        ("landscape", None),  # nothing like it: no trigger, prompt unchanged
    ],
)
def test_a_given_trigger_is_matched_exactly_by_containment_or_fuzzily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: str, found: str | None
) -> None:
    lora, name = _registered_lora(tmp_path, monkeypatch, TRIGGERS)
    assert lora.find_lora_trigger(name, asked, True) == found  # type: ignore[attr-defined]


def test_any_and_all_choose_from_the_stored_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lora, name = _registered_lora(tmp_path, monkeypatch, TRIGGERS)
    assert lora.get_lora_triggers(name, is_version=True) == list(TRIGGERS)  # type: ignore[attr-defined]


def test_a_lora_without_stored_words_gets_no_trigger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lora, name = _registered_lora(tmp_path, monkeypatch, ())
    assert lora.get_lora_triggers(name, is_version=True) == []  # type: ignore[attr-defined]
    assert lora.find_lora_trigger(name, "pixel", True) is None  # type: ignore[attr-defined]
