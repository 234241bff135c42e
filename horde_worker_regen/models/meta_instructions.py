"""Resolving `models_to_load` / `models_to_skip` into the list of models to serve.

Entries are model names or meta-instructions, matched case-insensitively:
`ALL`, `ALL SDXL`, `ALL SD15`, `ALL SD21`, `ALL SFW`, `ALL NSFW`, `ALL INPAINTING`
(each optionally followed by `MODELS`), `TOP n` and `BOTTOM n` (by recent usage).
Meta-instructions leave out Flux/Cascade-class models unless `load_large_models` is set;
a model named explicitly is always kept.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from horde_worker_regen.models.reference import (
    SD15_BASELINES,
    SD21_BASELINES,
    SDXL_BASELINES,
    ModelRecord,
    ModelReference,
)

_CATEGORY_FILTERS: dict[str, Callable[[ModelRecord], bool]] = {
    "": lambda record: True,
    "SDXL": lambda record: record.baseline in SDXL_BASELINES,
    "SD15": lambda record: record.baseline in SD15_BASELINES,
    "SD21": lambda record: record.baseline in SD21_BASELINES,
    "SFW": lambda record: not record.nsfw,
    "NSFW": lambda record: record.nsfw,
    "INPAINTING": lambda record: record.inpainting,
}
_ALL = re.compile(r"^ALL(?:\s+(SDXL|SD15|SD21|SFW|NSFW|INPAINTING))?(?:\s+MODELS)?$", re.IGNORECASE)
_RANKED = re.compile(r"^(TOP|BOTTOM)\s+(\d+)$", re.IGNORECASE)


class MetaInstructionError(ValueError):
    """A meta-instruction that cannot be resolved (e.g. TOP n with no usage figures)."""


@dataclass
class ModelSelection:
    """The models to serve, and what the operator should hear about how they were chosen."""

    models: list[str] = field(default_factory=list)
    unknown: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def is_meta_instruction(entry: str) -> bool:
    """Whether an entry is a meta-instruction rather than a model name."""
    text = " ".join(entry.split())
    return bool(_ALL.match(text) or _RANKED.match(text))


def _expand(entry: str, reference: ModelReference, load_large: bool) -> list[str]:
    """The models a meta-instruction stands for, in reference (or usage) order."""
    text = " ".join(entry.split())
    candidates = [r for r in reference.records.values() if load_large or not r.is_large]
    if match := _ALL.match(text):
        wanted = _CATEGORY_FILTERS[(match.group(1) or "").upper()]
        return [record.name for record in candidates if wanted(record)]
    match = _RANKED.match(text)
    assert match is not None
    if not reference.usage:
        raise MetaInstructionError(
            f"'{entry}' needs the horde's model usage figures, and none could be had (no cached copy, no answer"
            " from the horde, or an answer with no figures). Name the models instead, or try again online."
        )
    count = int(match.group(2))
    ordered = sorted(candidates, key=lambda r: (-reference.usage.get(r.name, 0), r.name))
    if match.group(1).upper() == "BOTTOM":
        ordered = sorted(candidates, key=lambda r: (reference.usage.get(r.name, 0), r.name))
    return [record.name for record in ordered[:count]]


def _closest(name: str, known: Iterable[str]) -> list[str]:
    by_fold = {k.casefold(): k for k in known}
    found = difflib.get_close_matches(name.casefold(), list(by_fold), n=3, cutoff=0.5)
    return [by_fold[key] for key in found]


def _resolve_entries(
    entries: list[str], reference: ModelReference, load_large: bool, selection: ModelSelection
) -> list[str]:
    names: list[str] = []
    for entry in entries:
        if is_meta_instruction(entry):
            names.extend(_expand(entry, reference, load_large))
            continue
        record = reference.find(entry.strip())
        if record is None:
            selection.unknown[entry] = _closest(entry, reference.records)
        else:
            names.append(record.name)
    return names


def resolve_models(
    to_load: list[str],
    to_skip: list[str],
    reference: ModelReference,
    load_large_models: bool,
    allow_painting: bool = True,
) -> ModelSelection:
    """Apply the meta-instructions and skips; unknown names are reported with close matches."""
    selection = ModelSelection()
    wanted = _resolve_entries(to_load, reference, load_large_models, selection)
    skipped = set(_resolve_entries(to_skip, reference, True, selection))
    for name in dict.fromkeys(wanted):
        if name in skipped:
            continue
        if reference.records[name].inpainting and not allow_painting:
            selection.notes.append(f"'{name}' left out: it only serves inpainting and allow_painting is off.")
            continue
        selection.models.append(name)
    if not load_large_models and any(is_meta_instruction(entry) for entry in to_load):
        large = sorted(r.name for r in reference.records.values() if r.is_large and r.name not in wanted)
        if large:
            selection.notes.append(
                f"{len(large)} large models (Flux, Stable Cascade) not included by meta-instructions;"
                " set load_large_models: true to include them."
            )
    return selection
