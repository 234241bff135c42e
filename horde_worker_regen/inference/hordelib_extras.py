"""A job's LoRAs and TIs handed to hordelib as the files the main process already fetched.

hordelib 2.22.2 resolves `payload.loras[].name` in `HordeLib.basic_inference` through its LoRA
model manager: `is_lora_available` looks the name up in the manager's in-memory reference (its
`lora.json`: a fuzzy name/model-id match, or with `is_version` an exact key of the version index)
and, when that fails, `fetch_adhoc_lora` asks CivitAI and downloads; the entry found gives the
file name ComfyUI's `HordeLoraLoader` loads from the `loras` folder (`<cache_home>/lora`) and the
trigger words. `payload.tis[].name` goes the same way through the TI manager (`is_local_model`,
else `fetch_adhoc_ti`), and the entry's `id` becomes `(embedding:<id>:<strength>)` in the prompt,
which ComfyUI loads as `<id>.safetensors` from the `embeddings` folder (`<cache_home>/ti`).
A LoRA entry's `inject_trigger` ("any": one trigger at random, "all": every trigger joined by ", ",
else the trigger equal to, containing, or fuzzily like the given text) picks from the version's
`triggers` in that reference and puts it first in the prompt, before any `###` negative part.

Chosen route: register each fetched file in those managers' in-memory reference the way their own
download would (`_add_lora_to_reference` / `_add_ti_to_reference`), under a key of our own, and
rewrite the payload entry to that exact key (a LoRA as a version, `is_version` true, so no fuzzy
match can pick another entry), with the trigger words the main process got from CivitAI. hordelib
then finds every LoRA and TI as already downloaded and never goes to the network; its trigger
injection, strength and prompt handling stay its own.
Rewriting the payload alone cannot work (any name hordelib does not find in its reference is
fetched), and leaving the LoRAs out of hordelib's payload would lose its LoRA nodes. A LoRA or TI
without a local file (the main process drops those it could not fetch) is dropped here with a
`download_failed` entry rather than left for hordelib to fetch.

Pure functions over plain dicts (no hordelib, no torch), so they are tested without either; the
manager side is duck-typed on the attributes named above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from horde_worker_regen.jobs.spec import GenerationSpec

# Prefix of the reference keys registered here: no CivitAI name or id looks like it, so a key of
# ours is never confused with an entry hordelib downloaded itself.
LOCAL_KEY_PREFIX = "regen-local:"
# What ComfyUI's prompt parser keeps intact inside `(embedding:<name>:<strength>)`.
_EMBEDDING_NAME = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass
class LocalExtras:
    """The payload's LoRA/TI entries rewritten to local keys, the reference entries to register, faults."""

    loras: list[dict[str, Any]] = field(default_factory=list)
    tis: list[dict[str, Any]] = field(default_factory=list)
    lora_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    ti_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[dict[str, str]] = field(default_factory=list)


def _entry_name(entry: Any) -> str:
    return str(entry.get("name") or "").strip() if isinstance(entry, dict) else ""


def _relative_file(path: str | None, folder: Path) -> Path | None:
    """`path` relative to `folder` when it is a file there (ComfyUI loads only from its folders)."""
    if not path:
        return None
    file = Path(path)
    try:
        relative = file.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return relative if file.is_file() else None


def _failed(kind: str, name: str) -> dict[str, str]:
    return {"type": kind, "value": "download_failed", "ref": name[:255]}


def lora_reference_entry(
    version: str, relative: Path, orig_name: str, triggers: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A LoRA reference entry shaped like the ones hordelib's manager writes after a download."""
    key = version.lower()
    return {
        "name": key,
        "orig_name": orig_name,
        "id": version,
        "nsfw": False,
        "versions": {
            version: {
                "filename": relative.as_posix(),
                "triggers": list(triggers),  # CivitAI's `trainedWords`, as hordelib's own download stores them
                "baseModel": "",
                "version_id": version,
                "lora_key": key,
                "adhoc": False,  # not hordelib's to evict: the main process owns the cache
                "availability": "Public",
            },
        },
    }


def ti_reference_entry(key: str, relative: Path, orig_name: str) -> dict[str, Any]:
    """A TI reference entry; `last_checked` and `baseModel` set so hordelib queues no refresh download."""
    return {
        "name": key,
        "orig_name": orig_name,
        "id": relative.with_suffix("").as_posix(),  # the embedding name ComfyUI resolves to this file
        "filename": relative.as_posix(),
        "baseModel": "",
        "nsfw": False,
        "last_checked": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
    }


def local_extras(spec: GenerationSpec, lora_folder: Path, ti_folder: Path) -> LocalExtras:
    """The job's LoRAs and TIs mapped onto their local files; those without one become faults."""
    extras = LocalExtras()
    for entry in spec.payload.get("loras") or ():
        name = _entry_name(entry)
        relative = _relative_file(spec.lora_files.get(name), lora_folder)
        if relative is None:
            extras.faults.append(_failed("lora", name))
            continue
        version = f"{LOCAL_KEY_PREFIX}{relative.as_posix()}"
        triggers = spec.lora_triggers.get(name, ())
        extras.lora_entries[version.lower()] = lora_reference_entry(version, relative, name, triggers)
        extras.loras.append({**entry, "name": version, "is_version": True})
    for entry in spec.payload.get("tis") or ():
        name = _entry_name(entry)
        relative = _relative_file(spec.ti_files.get(name), ti_folder)
        if relative is None or not _EMBEDDING_NAME.match(relative.with_suffix("").as_posix()):
            extras.faults.append(_failed("ti", name))
            continue
        key = f"{LOCAL_KEY_PREFIX}{relative.as_posix()}".lower()
        extras.ti_entries[key] = ti_reference_entry(key, relative, name)
        extras.tis.append({**entry, "name": key})
    return extras


def apply_to_payload(payload: dict[str, Any], extras: LocalExtras) -> None:
    """Replace the payload's LoRA/TI lists (only those it has) with the local ones."""
    if "loras" in payload:
        payload["loras"] = extras.loras
    if "tis" in payload:
        payload["tis"] = extras.tis


def register(lora_manager: Any, ti_manager: Any, extras: LocalExtras) -> None:
    """Put the entries in the managers' in-memory reference and indexes, as their downloads do."""
    for key, entry in extras.lora_entries.items():
        lora_manager.model_reference[key] = entry
        for version in entry["versions"]:
            lora_manager._index_version_ids[version] = key
        lora_manager._index_ids[entry["id"]] = key
    for key, entry in extras.ti_entries.items():
        ti_manager.model_reference[key] = entry
        ti_manager._index_ids[entry["id"]] = key


def unregister(lora_manager: Any, ti_manager: Any, extras: LocalExtras) -> None:
    """Take the entries out again: the main process may evict the files once the job is done."""
    for key, entry in extras.lora_entries.items():
        lora_manager.model_reference.pop(key, None)
        for version in entry["versions"]:
            lora_manager._index_version_ids.pop(version, None)
        lora_manager._index_ids.pop(entry["id"], None)
    for key, entry in extras.ti_entries.items():
        ti_manager.model_reference.pop(key, None)
        ti_manager._index_ids.pop(entry["id"], None)
