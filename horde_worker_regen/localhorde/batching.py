"""Pure formulas of the horde: accurate steps, batch size and job ttl (horde-api.md §3.4, §3.5)."""

from __future__ import annotations

from collections.abc import Sequence

SECOND_ORDER_SAMPLERS = frozenset({"k_heun", "k_dpm_2", "k_dpm_2_a", "k_dpmpp_2s_a", "k_dpmpp_sde"})
ADAPTIVE_SAMPLER_STEPS = 40

HEAVY_POST_PROCESSORS = frozenset(
    {
        "RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp", "CodeFormers",
        "4xNomos8kSC", "4xLSDIRplus", "4xNomos2_hq_dat2", "RestoreFormer",
    }
)  # fmt: skip

# Baselines whose jobs get three times the ttl.
SLOW_TTL_BASELINES = frozenset({"flux_1", "qwen_image", "z_image_turbo"})

MIN_TTL = 150
DEFAULT_IMG2IMG_DENOISE = 0.8


def accurate_steps(
    steps: int,
    sampler_name: str,
    *,
    img2img: bool = False,
    denoising_strength: float | None = None,
) -> float:
    """Steps weighted by sampler cost, as `ImageWaitingPrompt.get_accurate_steps` computes them.

    Second-order samplers count double, `k_dpm_adaptive` counts as 40 whatever was asked, and an
    img2img job only runs `denoising_strength` (default 0.8) of its steps. The img2img factor is the
    server's code; horde-api.md §3.4 leaves it out.
    """
    if sampler_name == "k_dpm_adaptive":
        return ADAPTIVE_SAMPLER_STEPS
    result: float = steps
    if sampler_name in SECOND_ORDER_SAMPLERS:
        result *= 2
    if img2img:
        result *= denoising_strength if denoising_strength is not None else DEFAULT_IMG2IMG_DENOISE
    return result


def safe_amount(
    *,
    width: int,
    height: int,
    post_processing: Sequence[str],
    transparent: bool,
    max_pixels: int,
    amount: int,
    remaining: int,
    disable_batching: bool,
) -> int:
    """How many images of a request one pop gets (`ImageWorker.get_safe_amount`).

    `round` is Python's banker's rounding, as on the server. The per-baseline batching multiplier
    is meant to scale `mps` but is looked up by model name, so it is always 1 (a server bug that is
    reproduced by leaving it out).
    """
    heavy = transparent or any(pp in HEAVY_POST_PROCESSORS for pp in post_processing)
    mps = width * height * (1 + 0.4 * len(post_processing)) * (1.8 if heavy else 1)
    safe = round((max_pixels / 3.5) * amount / mps)
    safe = max(1, min(safe, amount))
    safe = min(safe, remaining)
    if disable_batching:
        safe = 1
    return safe


def job_ttl(
    *,
    width: int,
    height: int,
    steps: float,
    control_type: bool,
    slow_baseline: bool,
    extra_slow_worker: bool,
) -> int:
    """Seconds a worker has for each image (`ImageProcessingGeneration.set_job_ttl`).

    `steps` are accurate steps. The result is per image and not multiplied by the batch size.
    """
    ttl = 30 + steps * 2 * (width * height / 262144)
    if control_type:
        ttl *= 2
    if slow_baseline:
        ttl *= 3
    ttl = max(ttl, MIN_TTL)
    if extra_slow_worker:
        ttl *= 3
    return int(ttl)
