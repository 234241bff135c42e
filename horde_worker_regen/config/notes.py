"""What compatibility keys do here, and the rules that tie keys together.

Operators bring bridgeData files written for the official worker. Some of its
keys tuned machinery this worker does not have, or does differently; they are
accepted and each gets a one-line note so nobody wonders whether it took effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData

COMPATIBILITY_NOTES: dict[str, str] = {
    "high_memory_mode": "accepted; the scheduler sizes model residency from measured free RAM/VRAM instead.",
    "very_high_memory_mode": "accepted; implies high_memory_mode, which the scheduler replaces by measuring memory.",
    "high_performance_mode": "accepted; slots are always kept busy here, so this changes nothing.",
    "moderate_performance_mode": "accepted; slots are always kept busy here, so this changes nothing.",
    "very_fast_disk_mode": "accepted; model loads are already allowed to overlap inference.",
    "post_process_job_overlap": "accepted; post-processing always overlaps the next job's sampling here.",
    "unload_models_from_vram_often": (
        "accepted; models stay resident while memory allows and are evicted by the scheduler."
    ),
    "cycle_process_on_model_change": "accepted; children are recycled by job count and RSS instead.",
    "dynamic_models": "ignored: the horde no longer assigns dynamic models; use TOP n in models_to_load.",
    "number_of_dynamic_models": "ignored: the horde no longer assigns dynamic models; use TOP n in models_to_load.",
    "max_models_to_download": "ignored: every resolved model in models_to_load is downloaded.",
    "ram_to_leave_free": "ignored: free RAM is measured before every model load.",
    "vram_to_leave_free": "ignored: free VRAM is measured before every model load.",
    "disable_terminal_ui": "ignored: this worker prints plain status lines, never a full-screen UI.",
    "temp_dir": "ignored: temporary files live under cache_home.",
    "always_download": "ignored: models in models_to_load are always downloaded when missing.",
    "disable_disk_cache": "ignored: this worker keeps no disk cache of loaded models.",
}


@dataclass(frozen=True)
class RuleViolation:
    """Two or more keys whose values contradict each other."""

    keys: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class EffectNote:
    """A setting that has no effect, or a different one, because of another setting."""

    key: str
    message: str


def rule_violations(data: BridgeData, explicit: set[str]) -> list[RuleViolation]:
    """Contradictions the operator wrote down themselves (defaults never contradict)."""
    found: list[RuleViolation] = []
    if "allow_painting" in explicit and data.allow_painting and not data.allow_img2img:
        found.append(
            RuleViolation(
                ("allow_painting", "allow_img2img"),
                "allow_painting: true needs allow_img2img: true (inpainting is a kind of img2img). "
                "Set allow_img2img: true, or allow_painting: false.",
            )
        )
    if "allow_sdxl_controlnet" in explicit and data.allow_sdxl_controlnet and not data.allow_controlnet:
        found.append(
            RuleViolation(
                ("allow_sdxl_controlnet", "allow_controlnet"),
                "allow_sdxl_controlnet: true needs allow_controlnet: true. "
                "Set allow_controlnet: true, or allow_sdxl_controlnet: false.",
            )
        )
    if data.high_performance_mode and data.moderate_performance_mode:
        found.append(
            RuleViolation(
                ("high_performance_mode", "moderate_performance_mode"),
                "high_performance_mode and moderate_performance_mode are both true; choose one.",
            )
        )
    return found


def effect_notes(data: BridgeData, explicit: set[str]) -> list[EffectNote]:
    """Settings whose effect depends on another setting, explained once at start."""
    notes: list[EffectNote] = []
    if data.allow_painting and not data.allow_img2img:
        notes.append(
            EffectNote("allow_painting", "is off because allow_img2img is false (inpainting needs img2img).")
        )
    if data.allow_sdxl_controlnet and not data.allow_controlnet:
        notes.append(EffectNote("allow_sdxl_controlnet", "is off because allow_controlnet is false."))
    if data.censor_nsfw and not data.nsfw:
        notes.append(
            EffectNote("censor_nsfw", "has little effect with nsfw: false: NSFW requests are not served at all.")
        )
    if data.extra_slow_worker and data.max_threads > 1:
        notes.append(
            EffectNote("extra_slow_worker", "is set with max_threads > 1; slow hardware usually does best with 1.")
        )
    for key in sorted(explicit & COMPATIBILITY_NOTES.keys()):
        notes.append(EffectNote(key, COMPATIBILITY_NOTES[key]))
    return notes


def effective_allow_painting(data: BridgeData) -> bool:
    """Whether painting jobs are really accepted."""
    return data.allow_painting and data.allow_img2img


def effective_allow_sdxl_controlnet(data: BridgeData) -> bool:
    """Whether SDXL ControlNet-type jobs are really accepted."""
    return data.allow_sdxl_controlnet and data.allow_controlnet
