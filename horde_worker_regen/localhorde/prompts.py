"""Turning a client's `POST /v2/generate/async` body into a queued `WaitingPrompt`.

Follows `ImageWaitingPrompt.extract_params` / `prepare_job_payload`: request defaults (512², 30 steps,
k_euler_a, cfg 5.0, karras on), `n` and the seed taken out of the params, `steps` renamed
`ddim_steps`, and the kudos priced once at creation.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from horde_worker_regen.localhorde.entities import StoredImage, User, WaitingPrompt
from horde_worker_regen.localhorde.errors import HordeError
from horde_worker_regen.localhorde.jobs import REQUEST_EXPIRY_S, seed_to_int
from horde_worker_regen.localhorde.kudos import legacy_kudos, request_kudos
from horde_worker_regen.localhorde.schemas import NON_UPSCALERS, AsyncArgs
from horde_worker_regen.localhorde.state import HordeState, StoredObject
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET

MAX_LORAS = 5
MAX_TIS = 20
MAX_EXTRA_SOURCE_IMAGES = 5
CONTROLNET_DEFAULT_STEPS = 20
CONTROLNET_MAX_STEPS = 40
REQUEST_DEFAULTS: dict[str, Any] = {
    "width": 512,
    "height": 512,
    "steps": 30,
    "sampler_name": "k_euler_a",
    "cfg_scale": 5.0,
    "karras": True,
}


def check_request(args: AsyncArgs) -> None:
    """The server's semantic checks on a request, each with its own rc."""
    params = args.params
    if len(params.get("loras") or []) > MAX_LORAS:
        raise HordeError(400, "TooManyLoras", f"You cannot request more than {MAX_LORAS} Loras per generation.")
    if len(params.get("tis") or []) > MAX_TIS:
        raise HordeError(
            400, "TooManyTIs", f"You cannot request more than {MAX_TIS} Textual Inversions per generation."
        )
    upscalers = [pp for pp in params.get("post_processing") or [] if pp not in NON_UPSCALERS]
    if len(upscalers) > 1:
        raise HordeError(400, "TooManyUpscalers", "Cannot use more than 1 upscaler at a time.")
    if args.source_mask and not args.source_image:
        raise HordeError(
            400,
            "SourceMaskUnnecessary",
            "Please do not pass a source_mask unless you are sending a source_image as well",
        )
    if params.get("control_type") and not args.source_image:
        raise HordeError(400, "ControlNetSourceMissing", "Controlnet Requires a source image.")
    if len(args.extra_source_images) > MAX_EXTRA_SOURCE_IMAGES:
        raise HordeError(
            400, "TooManyExtraSourceImages", f"You can send a maximum of {MAX_EXTRA_SOURCE_IMAGES} extra source images."
        )
    if params.get("workflow") == "qr_code" and not params.get("extra_texts"):
        raise HordeError(400, "MissingExtraTexts", "This request requires you pass the required extra texts.")


def store_source(state: HordeState, value: str, key: str, strength: float | None = None) -> StoredImage:
    """Keep a base64 image in the source bucket, or pass a client URL through unchanged."""
    if value.startswith(("http://", "https://")):
        return StoredImage(url=value, strength=strength)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise HordeError(
            400,
            "ImageValidationFailed",
            "Image validation failed. Please ensure the source image payload is either a URL containing an image "
            "or a valid base64 encoded image.",
        ) from error
    state.objects.put(SOURCES_BUCKET, key, StoredObject(data, "image/webp", state.clock.now()))
    return StoredImage(key=key, strength=strength)


def _extract_params(args: AsyncArgs) -> tuple[dict[str, Any], int, int | None, int | None]:
    """Request params with defaults; returns (params, n, seed, seed_variation)."""
    params = dict(args.params)
    n = int(params.pop("n", 1))
    if params.get("control_type"):
        params.setdefault("steps", CONTROLNET_DEFAULT_STEPS)
        params["steps"] = min(params["steps"], CONTROLNET_MAX_STEPS)
    for name, default in REQUEST_DEFAULTS.items():
        params.setdefault(name, default)
    raw_seed = params.pop("seed", None)
    seed = None if raw_seed in (None, "") else seed_to_int(raw_seed)
    seed_variation = params.pop("seed_variation", None)
    if seed_variation and seed is None:
        seed = seed_to_int(None)
    return params, n, seed, seed_variation


def price(params: dict[str, Any]) -> float:
    """`wp.kudos`: the legacy per-image cost plus the LoRA/TI bonuses."""
    base = legacy_kudos(
        width=params["width"],
        height=params["height"],
        steps=params["steps"],
        post_processing=params.get("post_processing") or [],
        control_type=bool(params.get("control_type")),
        return_control_map=bool(params.get("return_control_map")),
    )
    return request_kudos(base, lora_count=len(params.get("loras") or []), has_tis=bool(params.get("tis")))


def build_waiting_prompt(state: HordeState, user: User, args: AsyncArgs, *, safe_ip: bool = True) -> WaitingPrompt:
    """Validate, price and build a request; stores its source images (the caller queues it)."""
    check_request(args)
    params, n, seed, seed_variation = _extract_params(args)
    gen_payload = {k: v for k, v in params.items() if k != "steps"}
    gen_payload.update(prompt=args.prompt, ddim_steps=params["steps"])
    now = state.clock.now()
    wp_id = str(uuid.uuid4())
    wp = WaitingPrompt(
        id=wp_id,
        user_id=user.id,
        prompt=args.prompt,
        params=params,
        gen_payload=gen_payload,
        n=n,
        jobs=n,
        created=now,
        expiry=now + REQUEST_EXPIRY_S,
        kudos=price(params),
        extra_priority=user.kudos,
        models=list(args.models),
        nsfw=args.nsfw,
        censor_nsfw=args.censor_nsfw,
        trusted_workers=args.trusted_workers,
        slow_workers=args.slow_workers,
        extra_slow_workers=args.extra_slow_workers,
        r2=args.r2,
        shared=args.shared,
        disable_batching=args.disable_batching,
        workers=list(args.workers),
        worker_blacklist=args.worker_blacklist,
        safe_ip=safe_ip,
        source_processing=args.source_processing,
        seed=seed,
        seed_variation=seed_variation,
    )
    if args.source_image:
        wp.source_image = store_source(state, args.source_image, f"{wp_id}_src.webp")
    if args.source_mask:
        wp.source_mask = store_source(state, args.source_mask, f"{wp_id}_msk.webp")
    for index, extra in enumerate(args.extra_source_images):
        wp.extra_source_images.append(
            store_source(state, extra["image"], f"{wp_id}_src_{index}.webp", float(extra.get("strength", 1.0)))
        )
    return wp
