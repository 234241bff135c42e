"""A job's fetched LoRAs/TIs mapped onto hordelib's managers, so hordelib never fetches them itself."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import pytest

from horde_worker_regen.inference.hordelib_extras import (
    LOCAL_KEY_PREFIX,
    LocalExtras,
    apply_to_payload,
    local_extras,
    register,
    unregister,
)
from horde_worker_regen.jobs.spec import GenerationSpec

SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 512, 512, 20, 1, 7, "k_euler", 7.0, False, None, (), "txt2img")


def _files(tmp_path: Path) -> tuple[Path, Path, GenerationSpec]:
    """A lora/ and ti/ folder with one fetched file each, and a job asking for them plus one of each not fetched."""
    loras, tis = tmp_path / "lora", tmp_path / "ti"
    loras.mkdir()
    tis.mkdir()
    (loras / "111_style.safetensors").write_bytes(b"lora")
    (tis / "222_negative.safetensors").write_bytes(b"ti")
    payload = {
        "loras": [{"name": "Style", "model": 0.8, "clip": 1.0, "inject_trigger": "any"}, {"name": "missing"}],
        "tis": [{"name": "222", "inject_ti": "negprompt", "strength": 0.5}, {"name": "lost"}],
    }
    spec = replace(SPEC, payload=payload, lora_files={"Style": str(loras / "111_style.safetensors")},
                   ti_files={"222": str(tis / "222_negative.safetensors")})  # fmt: skip
    return loras, tis, spec


def test_fetched_files_become_exact_local_keys_and_the_rest_are_dropped_as_download_failed(tmp_path: Path) -> None:
    loras, tis, spec = _files(tmp_path)
    extras = local_extras(spec, loras, tis)
    version = f"{LOCAL_KEY_PREFIX}111_style.safetensors"
    assert extras.loras == [{"name": version, "model": 0.8, "clip": 1.0, "inject_trigger": "any", "is_version": True}]
    assert extras.lora_entries[version]["versions"][version]["filename"] == "111_style.safetensors"
    key = f"{LOCAL_KEY_PREFIX}222_negative.safetensors"
    assert extras.tis == [{"name": key, "inject_ti": "negprompt", "strength": 0.5}]
    assert extras.ti_entries[key]["id"] == "222_negative"  # ComfyUI's embedding name for the file
    assert extras.faults == [{"type": "lora", "value": "download_failed", "ref": "missing"},
                             {"type": "ti", "value": "download_failed", "ref": "lost"}]  # fmt: skip


def test_a_file_outside_comfyuis_folder_or_gone_is_not_handed_on(tmp_path: Path) -> None:
    loras, tis, spec = _files(tmp_path)
    elsewhere = tmp_path / "elsewhere.safetensors"
    elsewhere.write_bytes(b"lora")
    (tis / "222_negative.safetensors").unlink()
    extras = local_extras(replace(spec, lora_files={"Style": str(elsewhere)}), loras, tis)
    assert extras.loras == [] and extras.tis == [] and extras.lora_entries == {} and extras.ti_entries == {}
    assert [fault["ref"] for fault in extras.faults] == ["Style", "missing", "222", "lost"]


def test_the_payload_gets_the_local_lists_only_where_it_had_lists(tmp_path: Path) -> None:
    extras = LocalExtras(loras=[{"name": "x"}])
    payload: dict[str, Any] = {"loras": [{"name": "orig"}]}
    apply_to_payload(payload, extras)
    assert payload == {"loras": [{"name": "x"}]}


def _no_network(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise AssertionError("hordelib went to the network")


def _bare_managers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """hordelib's own LoRA/TI managers with an empty reference, their network paths made to fail the test."""
    import importlib

    # hordelib is part of the runtime this suite runs in; a missing one must fail, not skip.
    lora_module = importlib.import_module("hordelib.model_manager.lora")
    ti_module = importlib.import_module("hordelib.model_manager.ti")
    lora = object.__new__(lora_module.LoraModelManager)  # no __init__: it would read the user's cache
    ti = object.__new__(ti_module.TextualInversionModelManager)
    for manager in (lora, ti):
        manager.model_reference, manager._index_ids, manager._index_orig_names = {}, {}, {}
        manager._mutex, manager._file_mutex = threading.Lock(), threading.Lock()
    lora._index_version_ids, lora._file_lock, lora._using_multiprocessing = {}, threading.Lock(), False
    lora.models_db_path = tmp_path / "lora.json"
    for name in ("fetch_adhoc_lora", "get_lora_metadata", "_download_lora", "_add_lora_ids_to_download_queue"):
        monkeypatch.setattr(lora, name, _no_network)
    for name in ("fetch_adhoc_ti", "_get_json", "_download_ti", "_add_ti_ids_to_download_queue"):
        monkeypatch.setattr(ti, name, _no_network)
    return lora, ti


def test_hordelibs_managers_resolve_the_registered_files_without_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calls `HordeLib.basic_inference` makes for each LoRA and TI, on hordelib's own code."""
    lora, ti = _bare_managers(tmp_path, monkeypatch)
    loras, tis, spec = _files(tmp_path)
    extras = local_extras(spec, loras, tis)
    register(lora, ti, extras)
    name = extras.loras[0]["name"]
    assert lora.is_lora_available(name, is_version=True)
    assert lora.do_baselines_match(name, {"baseline": "stable diffusion 1"}, is_version=True)
    assert lora.get_lora_triggers(name, is_version=True) == []
    assert lora.get_lora_filename(name, is_version=True) == "111_style.safetensors"
    lora._touch_lora(name, is_version=True)  # saves the reference: to our tmp lora.json here
    ti_name = extras.tis[0]["name"]
    assert ti.is_local_model(ti_name) and ti.get_ti_name(ti_name) == ti_name
    assert ti.do_baselines_match(ti_name, {"baseline": "stable diffusion 1"})  # no refresh download queued
    assert ti.get_ti_id(ti_name) == "222_negative"
    unregister(lora, ti, extras)
    assert not lora.is_lora_available(name, is_version=True) and not ti.is_local_model(ti_name)
