"""The image model reference the local horde checks worker models against.

The real horde reads `AI-Horde-image-model-reference/stable_diffusion.json` (a dict of name to
record). A small bundled copy with real model names across every baseline ships next to this module;
tests and the worker's own suites can load another file or register extra names at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED_REFERENCE = Path(__file__).with_name("stable_diffusion.json")

# Unknown names carrying one of these tags are given that baseline, as the horde does (§4).
NAME_TAG_BASELINES: dict[str, str] = {
    "[SDXL]": "stable_diffusion_xl",
    "[Flux]": "flux_1",
    "[Qwen]": "qwen_image",
    "[ZImage]": "z_image_turbo",
}

DEFAULT_MIN_STEPS = 20
DEFAULT_MAX_STEPS = 40


@dataclass(frozen=True)
class ModelRecord:
    """What the horde needs to know about one model."""

    name: str
    baseline: str
    inpainting: bool = False
    nsfw: bool = False
    min_steps: int = DEFAULT_MIN_STEPS
    max_steps: int = DEFAULT_MAX_STEPS

    def to_json(self) -> dict[str, Any]:
        """The record in the reference file's shape."""
        return {
            "name": self.name,
            "baseline": self.baseline,
            "type": "ckpt",
            "inpainting": self.inpainting,
            "nsfw": self.nsfw,
            "requirements": {"min_steps": self.min_steps, "max_steps": self.max_steps},
        }


def _record_from_json(name: str, raw: Mapping[str, Any]) -> ModelRecord:
    requirements = raw.get("requirements") or {}
    return ModelRecord(
        name=str(raw.get("name", name)),
        baseline=str(raw.get("baseline", "stable diffusion 1")),
        inpainting=bool(raw.get("inpainting", False)),
        nsfw=bool(raw.get("nsfw", False)),
        min_steps=int(requirements.get("min_steps", DEFAULT_MIN_STEPS)),
        max_steps=int(requirements.get("max_steps", DEFAULT_MAX_STEPS)),
    )


class ModelReference:
    """Model name → baseline / inpainting / nsfw, with the horde's fallbacks for unknown names."""

    def __init__(self, records: Iterable[ModelRecord] = ()) -> None:
        self._records: dict[str, ModelRecord] = {record.name: record for record in records}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping[str, Any]]) -> ModelReference:
        """Build from the reference file's dict (name → record)."""
        return cls(_record_from_json(name, raw) for name, raw in data.items())

    @classmethod
    def load(cls, path: str | Path) -> ModelReference:
        """Load a `stable_diffusion.json`-shaped file."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_mapping(json.load(handle))

    @classmethod
    def bundled(cls) -> ModelReference:
        """The small reference shipped with the package."""
        return cls.load(BUNDLED_REFERENCE)

    def register(self, record: ModelRecord) -> None:
        """Add or replace one model (e.g. a test checkpoint)."""
        self._records[record.name] = record

    def names(self) -> list[str]:
        """All known model names."""
        return list(self._records)

    def is_known(self, name: str) -> bool:
        """True if the name is in the reference (exact, case-sensitive match)."""
        return name in self._records

    def get(self, name: str) -> ModelRecord | None:
        """The record of a known model."""
        return self._records.get(name)

    def baseline(self, name: str) -> str | None:
        """The model's baseline; tag-based for unknown names; None if nothing matches."""
        record = self._records.get(name)
        if record is not None:
            return record.baseline
        for tag, baseline in NAME_TAG_BASELINES.items():
            if tag in name:
                return baseline
        return None

    def is_inpainting(self, name: str) -> bool:
        """True for inpainting-only models."""
        record = self._records.get(name)
        return record is not None and record.inpainting

    def is_nsfw(self, name: str) -> bool:
        """True for models the reference flags as NSFW."""
        record = self._records.get(name)
        return record is not None and record.nsfw

    def step_limit(self, name: str) -> float:
        """The accurate-step limit `limit_max_steps` applies: (min_steps + max_steps) / 2."""
        record = self._records.get(name)
        if record is None:
            return (DEFAULT_MIN_STEPS + DEFAULT_MAX_STEPS) / 2
        return (record.min_steps + record.max_steps) / 2

    def to_json(self) -> dict[str, dict[str, Any]]:
        """The whole reference in the file's shape."""
        return {name: record.to_json() for name, record in self._records.items()}
