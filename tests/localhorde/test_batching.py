"""The batching, ttl and accurate-steps formulas against horde-api.md §3.4/§3.5's own tables."""

from __future__ import annotations

import pytest

from horde_worker_regen.localhorde.batching import accurate_steps, job_ttl, safe_amount

SIZES = {
    "512²": (512, 512, []),
    "768²": (768, 768, []),
    "1024x768": (1024, 768, []),
    "1024²": (1024, 1024, []),
    "1536²": (1536, 1536, []),
    "512²+GFPGAN": (512, 512, ["GFPGAN"]),
    "512²+RealESRGAN_x4plus": (512, 512, ["RealESRGAN_x4plus"]),
}

# (max_pixels, amount) → expected batch per column of the §3.4 table; None = over max_pixels.
BATCH_TABLE = {
    (262144, 4): {"512²": 1, "512²+GFPGAN": 1, "512²+RealESRGAN_x4plus": 1},
    (1048576, 4): {"512²": 4, "768²": 2, "1024x768": 2, "1024²": 1, "512²+GFPGAN": 3, "512²+RealESRGAN_x4plus": 2},
    (1048576, 8): {"512²": 8, "768²": 4, "1024x768": 3, "1024²": 2, "512²+GFPGAN": 7, "512²+RealESRGAN_x4plus": 4},
    (4194304, 8): {
        "512²": 8, "768²": 8, "1024x768": 8, "1024²": 8, "1536²": 4, "512²+GFPGAN": 8, "512²+RealESRGAN_x4plus": 8,
    },
}  # fmt: skip

CASES = [
    (max_pixels, amount, size, expected)
    for (max_pixels, amount), row in BATCH_TABLE.items()
    for size, expected in row.items()
]


@pytest.mark.parametrize(("max_pixels", "amount", "size", "expected"), CASES)
def test_batch_sizes_match_the_contract_table(max_pixels: int, amount: int, size: str, expected: int) -> None:
    width, height, post_processing = SIZES[size]
    got = safe_amount(
        width=width,
        height=height,
        post_processing=post_processing,
        transparent=False,
        max_pixels=max_pixels,
        amount=amount,
        remaining=20,
        disable_batching=False,
    )
    assert got == expected


def _safe(**overrides: object) -> int:
    args: dict[str, object] = {
        "width": 512, "height": 512, "post_processing": [], "transparent": False, "max_pixels": 1048576,
        "amount": 8, "remaining": 20, "disable_batching": False,
    }  # fmt: skip
    args.update(overrides)
    return safe_amount(**args)  # type: ignore[arg-type]


def test_batch_is_capped_by_what_the_request_still_needs() -> None:
    assert _safe(remaining=3) == 3


def test_disable_batching_gives_one_image() -> None:
    assert _safe(disable_batching=True) == 1


def test_batch_is_never_below_one() -> None:
    assert _safe(width=3072, height=3072, max_pixels=262144, amount=1) == 1


def test_rounding_is_bankers() -> None:
    # max_pixels 458752 = 3.5 x 131072, so a 512² image gives exactly amount/2 before rounding.
    assert _safe(max_pixels=458752, amount=5) == 2  # round(2.5) == 2, not 3
    assert _safe(max_pixels=458752, amount=7) == 4  # round(3.5) == 4


def test_transparent_counts_as_heavy() -> None:
    # 1048576/3.5*4 / (262144*1.8) = 2.54 → 3 (without transparent: 4.57 → 4 capped).
    assert _safe(transparent=True, amount=4) == 3
    assert _safe(transparent=False, amount=4) == 4


TTL_EXAMPLES = [
    # (width, height, steps, sampler, control, slow_baseline, extra_slow, expected) from §3.5
    (512, 512, 30, "k_euler_a", False, False, False, 150),
    (1024, 1024, 30, "k_euler_a", False, False, False, 270),
    (1024, 1024, 25, "k_dpmpp_sde", False, False, False, 430),
    (1024, 1024, 8, "k_euler", False, True, False, 282),
    (1536, 768, 40, "k_euler", False, False, False, 390),
    (512, 512, 30, "k_euler_a", False, False, True, 450),
    (1024, 1024, 30, "k_euler", True, False, False, 540),
]


@pytest.mark.parametrize(
    ("width", "height", "steps", "sampler", "control", "slow", "extra_slow", "expected"), TTL_EXAMPLES
)
def test_ttl_examples(
    *, width: int, height: int, steps: int, sampler: str, control: bool, slow: bool, extra_slow: bool, expected: int
) -> None:
    ttl = job_ttl(
        width=width,
        height=height,
        steps=accurate_steps(steps, sampler),
        control_type=control,
        slow_baseline=slow,
        extra_slow_worker=extra_slow,
    )
    assert ttl == expected
    assert isinstance(ttl, int)


@pytest.mark.parametrize(
    ("steps", "sampler", "img2img", "denoise", "expected"),
    [
        (30, "k_euler_a", False, None, 30),
        (30, "k_heun", False, None, 60),
        (30, "k_dpm_2", False, None, 60),
        (30, "k_dpm_2_a", False, None, 60),
        (30, "k_dpmpp_2s_a", False, None, 60),
        (25, "k_dpmpp_sde", False, None, 50),
        (10, "k_dpm_adaptive", False, None, 40),
        (30, "k_euler", True, None, 24),
        (30, "k_euler", True, 0.5, 15),
        (30, "k_heun", True, 0.5, 30),
    ],
)
def test_accurate_steps(steps: int, sampler: str, img2img: bool, denoise: float | None, expected: float) -> None:
    assert accurate_steps(steps, sampler, img2img=img2img, denoising_strength=denoise) == pytest.approx(expected)
