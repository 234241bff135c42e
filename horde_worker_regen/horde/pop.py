"""The pop request as this worker sends it, and the pop answer as the pipeline uses it.

Every pop field is set explicitly: the server's parser defaults differ from the SDK's and from the
swagger page (horde-api.md §0.2, §1.1). The answer is read from the raw JSON, never through the
SDK's response model: ids and upload URLs in the order the horde gave them (`ids[i]` pairs with
`r2_uploads[i]`; the SDK sorts both lists, and its `r2_upload` is only the first id's URL), and
every other field only after `payload_checks` has checked it.

Whatever the answer holds, `parse_pop_answer` returns or raises `MalformedPop`, nothing else. Once
the ids are read, anything wrong faults that job alone (`PoppedJob.rejected`, with the field and
the reason), so that every id is reported; only an answer whose ids cannot be read (not an object,
not JSON, ids of the wrong shape) is malformed: nothing in it can be reported, and the popper backs
off and asks again. `skipped` and `messages` are diagnostics: read leniently, they never fault a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.notes import effective_allow_painting, effective_allow_sdxl_controlnet
from horde_worker_regen.horde.client import NotJson
from horde_worker_regen.horde.field_checks import UNPRINTABLE, Problem, describe, is_whole, list_of, text
from horde_worker_regen.horde.horde_messages import HordeMessage, parse_messages
from horde_worker_regen.horde.payload_checks import (
    MAX_ID_CHARS,
    MAX_IDS,
    MAX_MODEL_CHARS,
    MAX_TTL_S,
    MAX_URL_CHARS,
    clean_text,
    job_problem,
    known_payload,
)
from horde_worker_regen.jobs.pop_flags import POP_FLAG_NAMES
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.models.optional_models import optional_kinds

REGEN_BRIDGE_NAME = "AI Horde Worker reGen"
PROJECT_URL = "https://github.com/Haidra-Org/horde-worker-reGen"
SEED_LIMIT = 2**32


def bridge_agent(capability_version: int) -> str:
    """`Name:version:url`, the version being what the active backend can honestly claim (§0.1)."""
    return f"{REGEN_BRIDGE_NAME}:{capability_version}:{PROJECT_URL}"


def pop_flag_values(data: BridgeData) -> dict[str, bool]:
    """Every `allow_*` flag of `jobs.pop_flags.POP_FLAGS` as the configuration sets it.

    A flag is true only when the worker can honour it: painting needs img2img, SDXL ControlNet needs
    ControlNet, and post-processing and ControlNet need their model references (`optional_kinds`).
    """
    kinds = optional_kinds(data)
    values = {
        "allow_img2img": data.allow_img2img,
        "allow_painting": effective_allow_painting(data),
        "allow_post_processing": kinds.post_processing,
        "allow_controlnet": kinds.controlnet,
        "allow_sdxl_controlnet": effective_allow_sdxl_controlnet(data) and kinds.controlnet,
        "allow_lora": data.allow_lora,
        "allow_unsafe_ipaddr": data.allow_unsafe_ip,
    }
    return {name: values[name] for name in POP_FLAG_NAMES}  # a flag added to the list must be set here


def build_pop_request(data: BridgeData, models: list[str], agent: str) -> ImageGenerateJobPopRequest:
    """The pop request with every field the server reads set from the configuration.

    The API key travels as a header (set by `HordeClient`), not in the model.
    """
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
        limit_max_steps=data.limit_max_steps,
        extra_slow_worker=data.extra_slow_worker,
        **pop_flag_values(data),
    )


class MalformedPop(ValueError):
    """The pop answer could not be understood: nothing in it can be reported."""


@dataclass(frozen=True)
class PoppedJob:
    """One popped batch: ids aligned with upload URLs, the generation spec, ttl and inputs to fetch."""

    ids: tuple[str, ...]
    upload_urls: tuple[str | None, ...]
    ttl: int
    spec: GenerationSpec
    sources: SourceRefs
    use_nsfw_censor: bool
    # Why the job cannot be run (a field outside the contract); the pipeline faults it at once.
    rejected: str | None = None
    # gen_metadata entries its faulted submits carry, telling the horde which field was wrong.
    fault_metadata: tuple[dict[str, Any], ...] = ()
    messages: tuple[HordeMessage, ...] = ()


@dataclass(frozen=True)
class NoJob:
    """The horde had nothing for this worker; `skipped` counts why (diagnostics only)."""

    skipped: dict[str, int]
    messages: tuple[HordeMessage, ...] = ()


DEFAULT_TTL_S = 150
MAX_SKIPPED_REASONS = 50
MAX_REF_CHARS = 255
_ID = text(min_chars=1, max_chars=MAX_ID_CHARS, plain=True)
_UPLOAD_URL = text(max_chars=MAX_URL_CHARS, plain=True)
# The gen_metadata `type` (horde-api.md §1.4) that names a rejected field best; "information" otherwise.
_METADATA_TYPES = {
    "source_image": "source_image",
    "source_mask": "source_mask",
    "extra_source_images": "extra_source_images",
    "payload.loras": "lora",
    "payload.tis": "ti",
}


def seed_number(seed: str | None) -> int:
    """The payload's digit-string seed as an int (a random-free fallback for anything else)."""
    if seed is not None and seed.strip().isdigit():
        return int(seed.strip()) % SEED_LIMIT
    return int.from_bytes((seed or "").encode()[:4].ljust(4, b"\0"), "little")


def _kind(value: Any) -> str:
    """What a value is, without any of its content (for lines about answers that are not understood)."""
    return (
        describe(value)
        if value is None or isinstance(value, bool | int | float | list | dict)
        else (f"text of {len(value)} characters" if isinstance(value, str) else type(value).__name__)
    )


def _ids_of(body: Any) -> tuple[str, ...]:
    """The answer's ids (§0.3: `ids` decides; the obsolete `id` only when `ids` is absent); raises MalformedPop."""
    if isinstance(body, NotJson):
        raise MalformedPop(f"the pop answer is not JSON ({body.size} bytes)")
    if not isinstance(body, dict):
        raise MalformedPop(f"the pop answer is {_kind(body)}, not an object")
    raw_ids = body.get("ids")
    if raw_ids is None:
        legacy = body.get("id")
        raw_ids = [] if legacy is None else [legacy]
    if isinstance(raw_ids, list) and len(raw_ids) > MAX_IDS:
        raise MalformedPop(f"the pop answer carries {len(raw_ids)} ids (at most {MAX_IDS})")
    if problem := list_of(_ID, MAX_IDS)("ids", raw_ids):
        raise MalformedPop(f"the pop answer's ids cannot be read ({problem.what})")
    return tuple(raw_ids)


def _default(payload: dict[str, Any], name: str, default: Any) -> Any:
    value = payload.get(name)
    return default if value is None else value


def _spec(body: dict[str, Any], ids: tuple[str, ...]) -> GenerationSpec:
    """The generation spec of a checked answer (absent fields take the contract's defaults)."""
    payload: dict[str, Any] = body["payload"]
    denoising = payload.get("denoising_strength")
    return GenerationSpec(
        job_key=ids[0],
        model=body["model"],
        prompt=clean_text(payload["prompt"]),
        width=_default(payload, "width", 512),
        height=_default(payload, "height", 512),
        steps=_default(payload, "ddim_steps", 30),
        n_iter=len(ids),  # one image per id, whatever n_iter says
        seed=seed_number(payload.get("seed")),
        sampler_name=_default(payload, "sampler_name", "k_euler_a"),
        cfg_scale=float(_default(payload, "cfg_scale", 7.5)),
        karras=_default(payload, "karras", True),
        denoising_strength=None if denoising is None else float(denoising),
        post_processing=tuple(payload.get("post_processing") or ()),
        source_processing=_default(body, "source_processing", "img2img") if body.get("source_image") else "txt2img",
        payload=known_payload(payload),
    )


def _sources(body: dict[str, Any]) -> SourceRefs:
    extras = tuple(
        (entry["image"], float(_default(entry, "strength", 1.0))) for entry in body.get("extra_source_images") or ()
    )
    return SourceRefs(body.get("source_image") or None, body.get("source_mask") or None, extras)


def _upload_url(path: str, url: Any) -> Problem | None:
    """One `r2_uploads` entry: a URL, or null (that id's image goes inline)."""
    return None if url is None else _UPLOAD_URL(path, url)


def _upload_urls(body: dict[str, Any], ids: tuple[str, ...]) -> tuple[tuple[str | None, ...], Problem | None]:
    """`r2_uploads` aligned with `ids` (None: inline submits), and what is wrong with it if anything."""
    raw = body.get("r2_uploads")
    none: tuple[str | None, ...] = (None,) * len(ids)
    if raw is None:
        return none, None
    if problem := list_of(_upload_url, MAX_IDS)("r2_uploads", raw):
        return none, problem
    if len(raw) != len(ids):
        return none, Problem("r2_uploads", f"{len(raw)} upload URL(s) for {len(ids)} id(s)")
    return tuple(raw), None


def _legacy_id_problem(body: dict[str, Any], ids: tuple[str, ...]) -> Problem | None:
    """The obsolete `id`: null, or one of `ids` (the horde sends `ids[0]`)."""
    legacy = body.get("id")
    if legacy is None or (isinstance(legacy, str) and legacy in ids):
        return None
    return Problem("id", f"{_kind(legacy)} is not one of the answer's ids")


def _rejected(
    body: dict[str, Any],
    ids: tuple[str, ...],
    uploads: tuple[str | None, ...],
    problem: Problem,
    messages: tuple[HordeMessage, ...],
) -> PoppedJob:
    """A job to fault at once: enough of a spec for its record, the reason, and its gen_metadata entry."""
    model, raw_ttl = body.get("model"), body.get("ttl")
    if not isinstance(model, str) or len(model) > MAX_MODEL_CHARS or UNPRINTABLE.search(model):
        model = ""
    ttl = raw_ttl if is_whole(raw_ttl) and 0 < raw_ttl <= MAX_TTL_S else DEFAULT_TTL_S
    spec = GenerationSpec(
        job_key=ids[0],
        model=model,
        prompt="",
        width=512,
        height=512,
        steps=1,
        n_iter=len(ids),
        seed=0,
        sampler_name="k_euler",
        cfg_scale=5.0,
        karras=False,
        denoising_strength=None,
        post_processing=(),
        source_processing="txt2img",
    )
    reason = str(problem)
    field = next((name for name in _METADATA_TYPES if problem.field.startswith(name)), "")
    entry = {"type": _METADATA_TYPES.get(field, "information"), "value": "parse_failed", "ref": reason[:MAX_REF_CHARS]}
    return PoppedJob(
        ids, uploads, ttl, spec, SourceRefs(), False, rejected=reason, fault_metadata=(entry,), messages=messages
    )


def _job(body: dict[str, Any], ids: tuple[str, ...], messages: tuple[HordeMessage, ...]) -> PoppedJob:
    uploads, upload_problem = _upload_urls(body, ids)
    unique = tuple(dict.fromkeys(ids))
    if len(unique) != len(ids):  # each id is reported once, with its first upload URL
        uploads = tuple(uploads[ids.index(job_id)] for job_id in unique)
        return _rejected(body, unique, uploads, Problem("ids", f"{len(ids) - len(unique)} id(s) repeated"), messages)
    if problem := upload_problem or _legacy_id_problem(body, ids) or job_problem(body):
        return _rejected(body, ids, uploads, problem, messages)
    return PoppedJob(
        ids=ids,
        upload_urls=uploads,
        ttl=body["ttl"],
        spec=_spec(body, ids),
        sources=_sources(body),
        use_nsfw_censor=bool(body["payload"].get("use_nsfw_censor")),
        messages=messages,
    )


def _skipped(raw: Any) -> dict[str, int]:
    """The no-job skip counts; anything that is not a count of a short reason is left out."""
    if not isinstance(raw, dict):
        if raw is not None:
            logger.debug("The pop answer's skipped counts are not an object; ignored")
        return {}
    counts = list(raw.items())[:MAX_SKIPPED_REASONS]
    return {reason: count for reason, count in counts
            if isinstance(reason, str) and len(reason) <= 40 and not UNPRINTABLE.search(reason)
            and is_whole(count) and 0 < count < 2**31}  # fmt: skip


def parse_pop_answer(body: Any) -> PoppedJob | NoJob:
    """A job, or the no-job answer (§0.3: `ids` decides, never `payload`); raises only MalformedPop.

    A job with any field outside the contract comes back with `rejected` set, so that the pipeline
    faults its ids (and only them) instead of losing them until the horde's ttl sweep.
    """
    try:
        ids = _ids_of(body)
        messages = parse_messages(body.get("messages"))
    except MalformedPop:
        raise
    except Exception as error:  # a reading bug must not stop the popper: the answer counts as malformed
        raise MalformedPop(f"the pop answer could not be read ({type(error).__name__})") from None
    if not ids:
        try:
            return NoJob(_skipped(body.get("skipped")), messages)
        except Exception:  # diagnostics only
            return NoJob({}, messages)
    try:
        return _job(body, ids, messages)
    except Exception as error:  # every id is still reported, faulted
        logger.opt(exception=error).error("Unexpected error while reading a pop answer; its job is faulted")
        unique = tuple(dict.fromkeys(ids))
        return _rejected(
            body,
            unique,
            (None,) * len(unique),
            Problem("(answer)", f"could not be read ({type(error).__name__})"),
            messages,
        )
