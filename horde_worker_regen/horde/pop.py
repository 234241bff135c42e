"""The pop request as this worker sends it, and the pop answer as the pipeline uses it.

Every pop field is set explicitly: the server's parser defaults differ from the SDK's and from the
swagger page (horde-api.md §0.2, §1.1). Ids and upload URLs are read from the raw answer in the
order the horde gave them (`ids[i]` pairs with `r2_uploads[i]`); the SDK model sorts both lists,
and its `r2_upload` is only the first id's URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest, ImageGenerateJobPopResponse
from pydantic import ValidationError

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.notes import effective_allow_painting, effective_allow_sdxl_controlnet
from horde_worker_regen.horde.payload_checks import MAX_IDS, clean_text, payload_problem
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.processes.messages import GenerationSpec

REGEN_BRIDGE_NAME = "AI Horde Worker reGen"
PROJECT_URL = "https://github.com/Haidra-Org/horde-worker-reGen"
SEED_LIMIT = 2**32


def bridge_agent(capability_version: int) -> str:
    """`Name:version:url`, the version being what the active backend can honestly claim (§0.1)."""
    return f"{REGEN_BRIDGE_NAME}:{capability_version}:{PROJECT_URL}"


def build_pop_request(data: BridgeData, models: list[str], agent: str) -> ImageGenerateJobPopRequest:
    """The pop request with every field the server reads set from the configuration.

    The API key travels as a header (set by `HordeClient`), not in the model.
    """
    kinds = optional_kinds(data)
    return ImageGenerateJobPopRequest(
        name=data.dreamer_name,
        models=models,
        bridge_agent=agent,
        amount=data.max_batch,
        max_pixels=data.max_pixels,
        nsfw=data.nsfw,
        blacklist=list(data.blacklist),
        threads=data.max_threads,
        require_upfront_kudos=data.require_upfront_kudos,
        priority_usernames=list(data.priority_usernames),
        allow_img2img=data.allow_img2img,
        allow_painting=effective_allow_painting(data),
        allow_unsafe_ipaddr=data.allow_unsafe_ip,
        allow_post_processing=kinds.post_processing,
        allow_controlnet=kinds.controlnet,
        allow_sdxl_controlnet=effective_allow_sdxl_controlnet(data) and kinds.controlnet,
        allow_lora=data.allow_lora,
        limit_max_steps=data.limit_max_steps,
        extra_slow_worker=data.extra_slow_worker,
    )


class MalformedPop(ValueError):
    """The pop answer could not be understood."""


@dataclass(frozen=True)
class SourceRefs:
    """Where the job's input images are: URLs, or base64 text from a bridge without `r2_source`."""

    source_image: str | None = None
    source_mask: str | None = None
    extra_source_images: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PoppedJob:
    """One popped batch: ids aligned with upload URLs, the generation spec, ttl and inputs to fetch."""

    ids: tuple[str, ...]
    upload_urls: tuple[str | None, ...]
    ttl: int
    spec: GenerationSpec
    sources: SourceRefs
    use_nsfw_censor: bool
    # Why the job cannot be run (its payload is outside the contract); the pipeline faults it at once.
    rejected: str | None = None


@dataclass(frozen=True)
class NoJob:
    """The horde had nothing for this worker; `skipped` counts why (diagnostics only)."""

    skipped: dict[str, int]


def seed_number(seed: str | None) -> int:
    """The payload's digit-string seed as an int (a random-free fallback for anything else)."""
    if seed is not None and seed.strip().isdigit():
        return int(seed.strip()) % SEED_LIMIT
    return int.from_bytes((seed or "").encode()[:4].ljust(4, b"\0"), "little")


def _spec(body: dict[str, Any], parsed: ImageGenerateJobPopResponse, ids: tuple[str, ...]) -> GenerationSpec:
    payload = parsed.payload
    raw_payload = dict(body.get("payload") or {})
    has_source = bool(parsed.source_image)
    return GenerationSpec(
        job_key=ids[0],
        model=parsed.model or "",
        prompt=clean_text(payload.prompt or ""),
        width=payload.width,
        height=payload.height,
        steps=payload.ddim_steps,
        n_iter=len(ids),  # one image per id, whatever n_iter says
        seed=seed_number(payload.seed),
        sampler_name=str(raw_payload.get("sampler_name", payload.sampler_name)),
        cfg_scale=payload.cfg_scale,
        karras=payload.karras,
        denoising_strength=raw_payload.get("denoising_strength"),
        post_processing=tuple(str(item) for item in raw_payload.get("post_processing") or ()),
        source_processing=str(body.get("source_processing") or "img2img") if has_source else "txt2img",
        payload=raw_payload,
    )


def _sources(body: dict[str, Any]) -> SourceRefs:
    extras = []
    for entry in body.get("extra_source_images") or ():
        if isinstance(entry, dict) and isinstance(entry.get("image"), str):
            extras.append((entry["image"], float(entry.get("strength") or 1.0)))
    return SourceRefs(body.get("source_image") or None, body.get("source_mask") or None, tuple(extras))


def _ids_of(body: dict[str, Any]) -> tuple[str, ...]:
    raw_ids = body.get("ids") or ([body["id"]] if body.get("id") else [])
    if not isinstance(raw_ids, list) or len(raw_ids) > MAX_IDS:
        raise MalformedPop(f"pop answer not understood: 'ids' is not a list of at most {MAX_IDS} ids")
    if not all(isinstance(job_id, str) and 0 < len(job_id) <= 64 for job_id in raw_ids):
        raise MalformedPop("pop answer not understood: an id is not a short string")
    return tuple(raw_ids)


def _rejected(body: dict[str, Any], ids: tuple[str, ...], uploads: tuple[str | None, ...], reason: str) -> PoppedJob:
    """A job to fault at once: enough of a spec for its record, and why."""
    model = body.get("model")
    spec = GenerationSpec(job_key=ids[0], model=model[:200] if isinstance(model, str) else "", prompt="",
                          width=512, height=512, steps=1, n_iter=len(ids), seed=0, sampler_name="k_euler",
                          cfg_scale=5.0, karras=False, denoising_strength=None, post_processing=(),
                          source_processing="txt2img")
    return PoppedJob(ids, uploads, _ttl(body), spec, SourceRefs(), False, rejected=reason)


def _ttl(body: dict[str, Any]) -> int:
    ttl = body.get("ttl")
    return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0 else 150


def parse_pop_answer(body: dict[str, Any]) -> PoppedJob | NoJob:
    """A job, or the no-job answer (§0.3: `ids` decides, never `payload`).

    A job whose payload is outside the contract comes back with `rejected` set, so that the pipeline
    faults its ids (and only them) instead of losing them until the horde's ttl sweep.
    """
    ids = _ids_of(body)
    if not ids:
        skipped = body.get("skipped") or {}
        if not isinstance(skipped, dict):
            return NoJob({})
        return NoJob({str(k): int(v) for k, v in skipped.items() if isinstance(v, int) and v})
    uploads = body.get("r2_uploads") or []
    uploads = uploads if isinstance(uploads, list) else []
    upload_urls = tuple(str(uploads[i]) if i < len(uploads) and isinstance(uploads[i], str) else None
                        for i in range(len(ids)))
    if problem := payload_problem(body.get("payload")):
        return _rejected(body, ids, upload_urls, problem)
    try:
        parsed = ImageGenerateJobPopResponse.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _rejected(body, ids, upload_urls, f"the payload was not understood ({where}: {first['msg']})")
    return PoppedJob(
        ids=ids,
        upload_urls=upload_urls,
        ttl=_ttl(body),
        spec=_spec(body, parsed, ids),
        sources=_sources(body),
        use_nsfw_censor=bool(parsed.payload.use_nsfw_censor),
    )
