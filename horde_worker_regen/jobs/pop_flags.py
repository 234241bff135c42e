"""The pop request's `allow_*` flags: the one list every other part derives its own view from.

Each flag names the pop request field and the job feature it refuses when false (None for a flag
that refuses no kind of job, `allow_unsafe_ipaddr`). `horde.pop` sets each from the configuration,
the fault breaker turns off the flags of a feature it withdraws, and the popper sends them as false.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.jobs.spec import Feature


@dataclass(frozen=True)
class PopFlag:
    """One `allow_*` field of the pop request and the feature it refuses when false."""

    name: str
    feature: Feature | None


POP_FLAGS: tuple[PopFlag, ...] = (
    PopFlag("allow_img2img", "img2img"),
    PopFlag("allow_painting", "inpainting"),
    PopFlag("allow_post_processing", "post_processing"),
    PopFlag("allow_controlnet", "controlnet"),
    PopFlag("allow_sdxl_controlnet", "controlnet"),
    PopFlag("allow_lora", "lora"),
    PopFlag("allow_unsafe_ipaddr", None),
)

POP_FLAG_NAMES: tuple[str, ...] = tuple(flag.name for flag in POP_FLAGS)


def _flags_by_feature() -> dict[str, tuple[str, ...]]:
    by_feature: dict[str, tuple[str, ...]] = {}
    for flag in POP_FLAGS:
        if flag.feature is not None:
            by_feature[flag.feature] = (*by_feature.get(flag.feature, ()), flag.name)
    return by_feature


# The pop flags that refuse the jobs needing each feature.
FEATURE_FLAGS: dict[str, tuple[str, ...]] = _flags_by_feature()
