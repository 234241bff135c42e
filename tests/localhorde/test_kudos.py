"""Kudos formulas: the legacy values of horde-api.md §4 and the bonuses and multipliers."""

from __future__ import annotations

import pytest

from horde_worker_regen.localhorde.kudos import (
    baseline_multiplier,
    credit_split,
    job_reward,
    legacy_kudos,
    request_kudos,
    uptime_reward,
)


@pytest.mark.parametrize(
    ("width", "height", "steps", "expected"),
    [
        (512, 512, 30, 6.50),
        (512, 768, 30, 9.44),
        (1024, 1024, 30, 36.04),
        (1024, 1024, 25, 30.03),  # k_dpmpp_2m: the legacy formula ignores the sampler
        (1024, 1024, 4, 4.80),
        (512, 512, 50, 10.83),  # k_dpmpp_sde: raw steps, not accurate steps
    ],
)
def test_legacy_kudos_matches_the_contract_table(width: int, height: int, steps: int, expected: float) -> None:
    assert legacy_kudos(width=width, height=height, steps=steps) == expected


def test_each_post_processor_adds_twenty_percent_rounded_each_time() -> None:
    assert legacy_kudos(width=512, height=512, steps=30, post_processing=["GFPGAN"]) == 7.8
    assert legacy_kudos(width=512, height=512, steps=30, post_processing=["GFPGAN", "RealESRGAN_x2plus"]) == 9.36


def test_controlnet_triples_unless_only_the_map_is_returned() -> None:
    assert legacy_kudos(width=512, height=512, steps=30, control_type=True) == 19.5
    assert legacy_kudos(width=512, height=512, steps=30, control_type=True, return_control_map=True) == 6.5


def test_lora_and_ti_bonuses() -> None:
    assert request_kudos(6.5, lora_count=2, has_tis=False) == 12.5
    assert request_kudos(6.5, lora_count=0, has_tis=True) == 7.5
    assert request_kudos(6.5, lora_count=1, has_tis=True) == 10.5


@pytest.mark.parametrize(
    ("baseline", "qr_code", "hires_fix", "expected"),
    [
        ("stable diffusion 1", False, False, 1),
        ("stable diffusion 2", False, False, 1),
        ("stable_diffusion_xl", False, False, 2),
        ("stable_diffusion_xl", True, False, 4),
        ("stable_cascade", False, False, 4),
        ("stable_cascade", False, True, 7),
        ("flux_1", False, False, 8),
        ("z_image_turbo", False, False, 8),
        ("qwen_image", False, False, 12),
        (None, False, False, 1),
    ],
)
def test_baseline_multipliers(baseline: str | None, qr_code: bool, hires_fix: bool, expected: float) -> None:
    assert baseline_multiplier(baseline, qr_code=qr_code, hires_fix=hires_fix) == expected


def test_reward_is_wp_kudos_times_multiplier_rounded() -> None:
    assert job_reward(30.03, 2) == 60.06
    assert job_reward(6.5 + 3, 8) == 76.0


def test_untrusted_owners_get_half_in_escrow_after_the_bridge_multiplier() -> None:
    untrusted = credit_split(10.0, 0.9, trusted=False)
    assert (untrusted.spendable, untrusted.escrow) == pytest.approx((4.5, 4.5))
    trusted = credit_split(10.0, 0.75, trusted=True)
    assert (trusted.spendable, trusted.escrow) == pytest.approx((7.5, 0.0))


def test_uptime_reward_includes_the_lora_bonus() -> None:
    assert uptime_reward(3, allow_lora=False) == 56
    assert uptime_reward(3, allow_lora=True) == 86
