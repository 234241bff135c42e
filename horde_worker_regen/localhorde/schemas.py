"""Request bodies: the flask-restx models as JSON schemas, and typed arguments after reqparse.

Each endpoint validates its body against the schema (messages from `validation`), checks the
reqparse-required arguments, then builds the pydantic model below, which carries the *parser*
defaults (horde-api.md §1.1: they differ from the swagger defaults).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from horde_worker_regen.localhorde.capabilities import KNOWN_SAMPLERS

KNOWN_POST_PROCESSORS = (
    "GFPGAN", "RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax",
    "4x_AnimeSharp", "CodeFormers", "strip_background", "4xNomos8kSC", "4xLSDIRplus",
    "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample", "4xNomos2_hq_dat2",
    "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer",
)  # fmt: skip
FACE_FIXERS = frozenset({"GFPGAN", "CodeFormers", "GFPGANv1.3", "RestoreFormer"})
NON_UPSCALERS = FACE_FIXERS | {"strip_background"}
KNOWN_CONTROL_TYPES = ("canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles", "hough")
SOURCE_PROCESSINGS = ("img2img", "inpainting", "outpainting", "remix")
GEN_METADATA_TYPES = (
    "lora", "ti", "censorship", "source_image", "source_mask", "extra_source_images", "batch_index",
    "information", "aesthetic_score",
)  # fmt: skip
GEN_METADATA_VALUES = ("download_failed", "parse_failed", "baseline_mismatch", "csam", "nsfw", "see_ref")
SUBMIT_STATES = ("ok", "censored", "faulted", "csam")

_BOOL: dict[str, Any] = {"type": "boolean"}
_STR: dict[str, Any] = {"type": "string"}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR}
_DIMENSION: dict[str, Any] = {"type": "integer", "minimum": 64, "maximum": 3072, "multipleOf": 64}
_STRENGTH: dict[str, Any] = {"type": "number", "minimum": 0.01, "maximum": 1.0}

POP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STR,
        "priority_usernames": _STR_LIST,
        "nsfw": _BOOL,
        "models": {"type": "array", "items": {"type": "string", "minLength": 3, "maxLength": 255}},
        "bridge_agent": {"type": "string", "maxLength": 1000},
        "threads": {"type": "integer", "minimum": 1, "maximum": 50},
        "require_upfront_kudos": _BOOL,
        "amount": {"type": "integer", "minimum": 1, "maximum": 20},
        "max_pixels": {"type": "integer"},
        "blacklist": _STR_LIST,
        **{
            flag: _BOOL
            for flag in (
                "allow_img2img",
                "allow_painting",
                "allow_unsafe_ipaddr",
                "allow_post_processing",
                "allow_controlnet",
                "allow_sdxl_controlnet",
                "allow_lora",
                "limit_max_steps",
                "extra_slow_worker",
            )
        },
    },
}

SUBMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "seed"],
    "properties": {
        "id": _STR,
        "generation": _STR,
        "state": {"type": "string", "enum": list(SUBMIT_STATES)},
        "seed": {"type": "integer"},
        "censored": _BOOL,
        "gen_metadata": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "value"],
                "properties": {
                    "type": {"type": "string", "enum": list(GEN_METADATA_TYPES)},
                    "value": {"type": "string", "enum": list(GEN_METADATA_VALUES)},
                    "ref": {"type": "string", "maxLength": 255},
                },
            },
        },
    },
}

_LORA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "model": {"type": "number", "minimum": -5.0, "maximum": 5.0},
        "clip": {"type": "number", "minimum": -5.0, "maximum": 5.0},
        "inject_trigger": {"type": "string", "minLength": 1, "maxLength": 30},
        "is_version": _BOOL,
    },
}
_TI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "inject_ti": {"type": "string", "enum": ["prompt", "negprompt"]},
        "strength": {"type": "number", "minimum": -5.0, "maximum": 5.0},
    },
}

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sampler_name": {"type": "string", "enum": list(KNOWN_SAMPLERS)},
        "cfg_scale": {"type": "number", "minimum": 0, "maximum": 100},
        "denoising_strength": _STRENGTH,
        "hires_fix_denoising_strength": _STRENGTH,
        "seed": _STR,
        "height": _DIMENSION,
        "width": _DIMENSION,
        "seed_variation": {"type": "integer", "minimum": 1, "maximum": 1000},
        "post_processing": {
            "type": "array",
            "items": {"type": "string", "enum": list(KNOWN_POST_PROCESSORS)},
            "uniqueItems": True,
        },
        "karras": _BOOL,
        "tiling": _BOOL,
        "hires_fix": _BOOL,
        "clip_skip": {"type": "integer", "minimum": 1, "maximum": 12},
        "control_type": {"type": "string", "enum": list(KNOWN_CONTROL_TYPES)},
        "image_is_control": _BOOL,
        "return_control_map": _BOOL,
        "facefixer_strength": {"type": "number", "minimum": 0, "maximum": 1.0},
        "loras": {"type": "array", "items": _LORA_SCHEMA},
        "tis": {"type": "array", "items": _TI_SCHEMA},
        "special": {"type": "object"},
        "extra_texts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "reference"],
                "properties": {"text": _STR, "reference": _STR},
            },
        },
        "workflow": {"type": "string", "enum": ["qr_code"]},
        "transparent": _BOOL,
        "steps": {"type": "integer", "minimum": 1, "maximum": 500},
        "n": {"type": "integer", "minimum": 1, "maximum": 20},
    },
}

ASYNC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "params": PARAMS_SCHEMA,
        **{
            flag: _BOOL
            for flag in (
                "nsfw",
                "trusted_workers",
                "slow_workers",
                "extra_slow_workers",
                "censor_nsfw",
                "r2",
                "shared",
                "replacement_filter",
                "dry_run",
                "disable_batching",
                "allow_downgrade",
                "worker_blacklist",
            )
        },
        "workers": _STR_LIST,
        "models": _STR_LIST,
        "source_image": _STR,
        "source_processing": {"type": "string", "enum": list(SOURCE_PROCESSINGS)},
        "source_mask": _STR,
        "extra_source_images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": _STR, "strength": {"type": "number"}},
            },
        },
        "webhook": _STR,
        "style": _STR,
        "proxied_account": _STR,
    },
}

WORKER_MODIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "maintenance": _BOOL,
        "maintenance_msg": _STR,
        "paused": _BOOL,
        "info": {"type": "string", "maxLength": 1000},
        "name": {"type": "string", "minLength": 5, "maxLength": 100},
        "team": {"type": "string", "maxLength": 36},
    },
}


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Any:
        """Build from a schema-validated body; omitted and null fields take the parser default."""
        return cls.model_validate({k: v for k, v in body.items() if v is not None})


class PopArgs(_Args):
    """`POST /v2/generate/pop` after reqparse, with the parser's defaults."""

    name: str
    priority_usernames: list[str] = Field(default_factory=list)
    nsfw: bool = True
    models: list[str] = Field(default_factory=list)
    bridge_agent: str = "unknown:0:unknown"
    threads: int = 1
    require_upfront_kudos: bool = False
    amount: int = 1
    max_pixels: int = 512 * 512
    blacklist: list[str] = Field(default_factory=list)
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_unsafe_ipaddr: bool = True
    allow_post_processing: bool = True
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    limit_max_steps: bool = False
    extra_slow_worker: bool = False


class SubmitArgs(_Args):
    """`POST /v2/generate/submit` after reqparse."""

    id: str
    generation: str
    state: str = "ok"
    seed: int
    censored: bool = False
    gen_metadata: list[dict[str, Any]] = Field(default_factory=list)


class AsyncArgs(_Args):
    """`POST /v2/generate/async` after reqparse (params stay a dict, as on the server)."""

    prompt: str
    params: dict[str, Any] = Field(default_factory=dict)
    nsfw: bool = True
    trusted_workers: bool = False
    slow_workers: bool = True
    extra_slow_workers: bool = False
    censor_nsfw: bool = True
    r2: bool = True
    shared: bool = False
    replacement_filter: bool = True
    dry_run: bool = False
    disable_batching: bool = False
    worker_blacklist: bool = False
    workers: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    source_image: str | None = None
    source_processing: str = "img2img"
    source_mask: str | None = None
    extra_source_images: list[dict[str, Any]] = Field(default_factory=list)


class WorkerModifyArgs(_Args):
    """`PUT /v2/workers/{id}`."""

    maintenance: bool | None = None
    maintenance_msg: str | None = None
    paused: bool | None = None
    info: str | None = None
    name: str | None = None
    team: str | None = None
