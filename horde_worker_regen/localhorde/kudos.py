"""Kudos arithmetic of the horde (horde-api.md §4).

The real server prices a job with a small neural network (`kudos-v21-206.npz`) and falls back to a
closed-form *legacy* formula when the network cannot handle the parameters. The network's weights
are not shipped here, so the local horde always uses the legacy formula. Rewards are therefore
lower than the live horde's for small images and higher for large ones (compare the §4 table), but
every other rule — the LoRA/TI bonuses, the baseline multipliers, the bridge multiplier and the
trusted/untrusted split — is the server's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def legacy_kudos(
    *,
    width: int,
    height: int,
    steps: int,
    post_processing: Sequence[str] = (),
    control_type: bool = False,
    return_control_map: bool = False,
) -> float:
    """The legacy per-image base cost.

    `steps` are the requested steps, not accurate steps: the server's legacy branch reads
    `params["steps"]` directly. Each post-processor adds 20 %, ControlNet triples the cost unless
    only the control map is wanted; every step is rounded to two decimals as on the server.
    """
    size = math.pow(width * height - 64 * 64, 1.75) / math.pow(1024 * 1024 - 64 * 64, 1.75)
    kudos = round(0.1232 * steps + size * (0.1232 * steps * 8.75), 2)
    for _ in post_processing:
        kudos = round(kudos * 1.2, 2)
    if control_type and not return_control_map:
        kudos = round(kudos * 3, 2)
    return kudos


def request_kudos(base: float, *, lora_count: int, has_tis: bool) -> float:
    """`wp.kudos`: the base cost plus 3 per LoRA and 1 if any textual inversion is used."""
    return base + 3 * lora_count + (1 if has_tis else 0)


def baseline_multiplier(baseline: str | None, *, qr_code: bool = False, hires_fix: bool = False) -> float:
    """The reward multiplier of a model's baseline."""
    if baseline == "stable_diffusion_xl":
        return 4 if qr_code else 2
    if baseline == "stable_cascade":
        return 7 if hires_fix else 4
    if baseline in ("flux_1", "z_image_turbo"):
        return 8
    if baseline == "qwen_image":
        return 12
    return 1


def job_reward(wp_kudos: float, multiplier: float) -> float:
    """The per-image `reward` a submit returns (before the bridge multiplier)."""
    return round(wp_kudos * multiplier, 2)


@dataclass(frozen=True)
class Credit:
    """How one reward is split when it is credited to the worker's owner."""

    spendable: float
    escrow: float


def credit_split(reward: float, bridge_multiplier: float, *, trusted: bool) -> Credit:
    """Apply the bridge multiplier; untrusted owners get half as escrow (`evaluating_kudos`)."""
    credited = reward * bridge_multiplier
    if trusted:
        return Credit(spendable=credited, escrow=0.0)
    return Credit(spendable=credited / 2, escrow=credited / 2)


def uptime_reward(model_count: int, allow_lora: bool) -> int:
    """Kudos for each 600 s of uptime."""
    return 50 + 2 * model_count + (30 if allow_lora else 0)


# Alchemy (horde-v13-and-alchemy.md §3.3): fixed values per form, no bridge factor.
INTERROGATION_FORM_VALUE = 3.0
POST_PROCESSOR_VALUE_PER_TILE = 3.0
OTHER_FORM_VALUE = 1.0
ALCHEMIST_UPTIME_REWARD = 40


def form_value(form: str, *, post_processor: bool, tiles: int) -> float:
    """What one delivered form pays its alchemist's owner (`Interrogation.set_forms`): 3 for an
    interrogation, 3 per 512² tile for a post-processor (strip_background included), 1 otherwise."""
    if form == "interrogation":
        return INTERROGATION_FORM_VALUE
    if post_processor:
        return POST_PROCESSOR_VALUE_PER_TILE * tiles
    return OTHER_FORM_VALUE


def form_charge(value: float, *, slow_workers: bool) -> float:
    """What the requester pays for one delivered form (`InterrogationForms.record`): its value plus a
    burn of 1, or 2 when the request allows slow workers (the default)."""
    return value + (2 if slow_workers else 1)
