"""Pop response bodies, marshalled as flask-restx does (horde-api.md §1.2, §1.3, §2).

Top-level fields are always present (nulls, not omitted); the `payload` skips absent fields except
those with a default in the response model; `seed` is a string; `source_processing` defaults to
"img2img" even for txt2img jobs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from horde_worker_regen.localhorde.entities import StoredImage, WaitingPrompt
from horde_worker_regen.localhorde.state import ObjectStore
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET, URL_LIFETIME_S, UrlSigner

# `ModelPayloadStable` fields in marshalling order, with the model's defaults where it has one.
PAYLOAD_FIELDS = (
    "prompt", "ddim_steps", "n_iter", "seed", "image_is_control", "return_control_map", "sampler_name",
    "cfg_scale", "denoising_strength", "hires_fix_denoising_strength", "height", "width", "post_processing",
    "facefixer_strength", "karras", "tiling", "hires_fix", "clip_skip", "control_type", "loras", "tis",
    "special", "extra_texts", "workflow", "transparent", "use_nsfw_censor",
)  # fmt: skip
PAYLOAD_DEFAULTS: dict[str, Any] = {
    "ddim_steps": 30,
    "n_iter": 1,
    "image_is_control": False,
    "return_control_map": False,
    "sampler_name": "k_euler_a",
    "cfg_scale": 7.5,
    "height": 512,
    "width": 512,
    "karras": False,
    "tiling": False,
    "hires_fix": False,
    "transparent": False,
}


def marshal_payload(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the model's fields, fill its defaults, drop absent (None) ones."""
    payload: dict[str, Any] = {}
    for name in PAYLOAD_FIELDS:
        value = raw.get(name)
        if value is None:
            value = PAYLOAD_DEFAULTS.get(name)
        if value is not None:
            payload[name] = value
    return payload


def job_payload(wp: WaitingPrompt, *, seed: int, n_iter: int) -> dict[str, Any]:
    """The generation parameters of one batch."""
    raw = dict(wp.gen_payload)
    raw.update(seed=str(seed), n_iter=n_iter)
    if not wp.nsfw and wp.censor_nsfw:
        raw["use_nsfw_censor"] = True
    return marshal_payload(raw)


def _skeleton() -> dict[str, Any]:
    return {
        "payload": marshal_payload({}),
        "id": None,
        "ids": [],
        "messages": [],
        "ttl": None,
        "skipped": {},
        "model": None,
        "source_image": None,
        "source_processing": "img2img",
        "source_mask": None,
        "extra_source_images": None,
        "r2_upload": None,
        "r2_uploads": None,
    }


def no_job_response(skipped: dict[str, int]) -> dict[str, Any]:
    """HTTP 200 with `ids: []`, a default-filled payload and the skip counts."""
    body = _skeleton()
    body["skipped"] = skipped
    return body


@dataclass(frozen=True)
class SourceLinks:
    """How input images are handed to one worker."""

    base: str
    signer: UrlSigner
    objects: ObjectStore
    inline: bool  # the bridge lacks `r2_source`: send base64 instead of URLs

    def link(self, image: StoredImage | None, created: float) -> str | None:
        """A URL (valid 1800 s from request creation), base64, or a client URL passed through."""
        if image is None:
            return None
        if image.url is not None:
            return image.url
        assert image.key is not None
        if self.inline:
            stored = self.objects.get(SOURCES_BUCKET, image.key)
            return base64.b64encode(stored.data).decode() if stored else None
        return self.signer.url(self.base, "GET", SOURCES_BUCKET, image.key, issued=created, lifetime=URL_LIFETIME_S)


def job_response(
    wp: WaitingPrompt,
    *,
    ids: list[str],
    payload: dict[str, Any],
    model: str,
    ttl: int,
    upload_urls: list[str],
    sources: SourceLinks,
) -> dict[str, Any]:
    """A pop response carrying a batch: `ids[i]` pairs with `r2_uploads[i]`."""
    body = _skeleton()
    body.update(payload=payload, id=ids[0], ids=ids, ttl=ttl, model=model)
    body.update(r2_upload=upload_urls[0], r2_uploads=upload_urls)
    if wp.source_image is not None:
        body["source_image"] = sources.link(wp.source_image, wp.created)
        body["source_processing"] = wp.source_processing
        body["source_mask"] = sources.link(wp.source_mask, wp.created)
    if wp.extra_source_images:
        body["extra_source_images"] = [
            {
                "image": sources.link(extra, wp.created),
                "strength": extra.strength if extra.strength is not None else 1.0,
            }
            for extra in wp.extra_source_images
        ]
    return body
