"""Checking a popped job's payload against the contract before any work is done on it.

The horde only sends what the contract allows (horde-api.md §1.3), so a payload outside it is a
server fault or a hostile horde: the job is faulted with the reason, and only that job. Limits are
those of the contract, except the prompt, which the contract leaves unbounded: a prompt of
`MAX_PROMPT_CHARS` or more is refused rather than tokenised and logged.
"""

from __future__ import annotations

from typing import Any

KNOWN_SAMPLERS = frozenset({
    "k_lms", "k_heun", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a", "k_dpm_fast", "k_dpm_adaptive",
    "k_dpmpp_2s_a", "k_dpmpp_2m", "dpmsolver", "k_dpmpp_sde", "DDIM", "lcm",
})  # fmt: skip
KNOWN_POST_PROCESSORS = frozenset({
    "GFPGAN", "RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax",
    "4x_AnimeSharp", "CodeFormers", "strip_background", "4xNomos8kSC", "4xLSDIRplus",
    "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample", "4xNomos2_hq_dat2",
    "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer",
})  # fmt: skip
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 3072, 64
MAX_STEPS = 500
MAX_CFG = 100.0
MAX_PROMPT_CHARS = 100_000
MAX_IDS = 20


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _side_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{name} {value!r} is not a whole number"
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_STEP:
        return f"{name} {value} is outside {MIN_SIDE}..{MAX_SIDE} or not a multiple of {SIDE_STEP}"
    return None


def _generation_problem(payload: dict[str, Any]) -> str | None:
    sampler = payload.get("sampler_name", "k_euler_a")
    if sampler not in KNOWN_SAMPLERS:
        return f"unknown sampler {str(sampler)[:40]!r} (known: {', '.join(sorted(KNOWN_SAMPLERS))})"
    steps = payload.get("ddim_steps", 30)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        return f"ddim_steps {str(steps)[:20]!r} is outside 1..{MAX_STEPS}"
    cfg = payload.get("cfg_scale", 5.0)
    if not _number(cfg) or not 0 <= cfg <= MAX_CFG:
        return f"cfg_scale {str(cfg)[:20]!r} is outside 0..{MAX_CFG:g}"
    post = payload.get("post_processing") or []
    unknown = [str(name)[:40] for name in post if name not in KNOWN_POST_PROCESSORS] if isinstance(post, list) else [
        "(not a list)"]
    if unknown:
        return f"unknown post-processor(s) {unknown}"
    return None


def payload_problem(payload: Any) -> str | None:
    """Why the job's `payload` is outside the contract, or None if it is within it."""
    if not isinstance(payload, dict):
        return "the payload is not an object"
    prompt = payload.get("prompt", "")
    if not isinstance(prompt, str):
        return "the prompt is not text"
    if len(prompt) >= MAX_PROMPT_CHARS:
        return f"a prompt of {len(prompt)} characters (at most {MAX_PROMPT_CHARS - 1} are accepted)"
    for name in ("width", "height"):
        if problem := _side_problem(name, payload.get(name, 512)):
            return problem
    return _generation_problem(payload)


def clean_text(text: str) -> str:
    """`text` without NUL bytes, which no backend or log should see (the horde itself refuses them, §5)."""
    return text.replace("\x00", "")
