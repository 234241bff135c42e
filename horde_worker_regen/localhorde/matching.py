"""Which request a popping worker gets (horde-api.md §3.2) and why others were skipped (§3.3).

`skip_reasons` returns every reason a request is not for this worker (empty: it is). The SQL
filters of `get_sorted_wp_filtered_to_worker` come first, then the per-candidate checks of
`ImageWorker.can_generate`; the reason names are the keys of the pop response's `skipped`.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.localhorde.capabilities import supported_samplers
from horde_worker_regen.localhorde.entities import SLOW_WORKER_SPEED, User, WaitingPrompt, Worker
from horde_worker_regen.localhorde.reference import ModelReference

NOT_REPORTED = "maintenance"
# A worker declaring one of these is not given requests that name no model (§3.2).
SPECIAL_MODEL_PREFIX = "horde_special"
SDXL_BETA_MODEL = "SDXL_beta::stability.ai#6901"
PRIORITY_STEP_S = 10
PRIORITY_STEP_BONUS = 50


@dataclass(frozen=True)
class PopContext:
    """What matching reads: the stored check-in, this pop's models, the owner and the bridge."""

    worker: Worker
    owner: User
    models: tuple[str, ...]
    capabilities: frozenset[str]
    reference: ModelReference
    requesters: dict[int, User]


def matching_models(ctx: PopContext, wp: WaitingPrompt) -> list[str]:
    """Models both sides name (any declared model for an unnamed request); no inpainting-only
    model for a job that is not inpainting."""
    if wp.models:
        names = [m for m in wp.models if m in ctx.models]
    elif any(m.startswith(SPECIAL_MODEL_PREFIX) or m == SDXL_BETA_MODEL for m in ctx.models):
        names = []
    else:
        names = list(ctx.models)
    if not wp.is_painting:
        names = [m for m in names if not ctx.reference.is_inpainting(m)]
    return names


def capable_models(ctx: PopContext, wp: WaitingPrompt, names: list[str]) -> list[str]:
    """Drop models whose baseline needs a capability the bridge lacks."""
    kept = []
    for name in names:
        baseline = ctx.reference.baseline(name)
        if baseline == "flux_1" and "flux" not in ctx.capabilities:
            continue
        if (
            baseline == "stable_cascade"
            and wp.params.get("hires_fix")
            and "stable_cascade_2pass" not in ctx.capabilities
        ):
            continue
        kept.append(name)
    return kept


def _reasons(checks: list[tuple[str, bool]]) -> list[str]:
    return [reason for reason, failed in checks if failed]


def _sql_filters(ctx: PopContext, wp: WaitingPrompt) -> list[str]:
    """The filters the server applies in SQL before looking at any candidate."""
    w, caps, params = ctx.worker, ctx.capabilities, wp.params
    bridge_lacks = (
        (wp.r2 and "r2" not in caps)
        or (bool(wp.extra_source_images) and "extra_source_images" not in caps)
        or (bool(params.get("loras")) and "lora" not in caps)
        or (bool(params.get("tis")) and "textual_inversion" not in caps)
        or (bool(params.get("control_type")) and "controlnet" not in caps)
        or (bool(params.get("transparent")) and ("layer_diffuse" not in caps or not w.allow_sdxl_controlnet))
    )
    return _reasons(
        [
            ("max_pixels", wp.width * wp.height > w.max_pixels),
            ("models", not matching_models(ctx, wp)),
            ("img2img", wp.is_img2img and not w.allow_img2img),
            ("painting", wp.is_painting and not w.allow_painting),
            ("unsafe_ip", not wp.safe_ip and not w.allow_unsafe_ipaddr),
            ("nsfw", wp.nsfw and not w.nsfw),
            ("lora", bool(params.get("loras")) and not w.allow_lora),
            ("controlnet", bool(params.get("control_type")) and not w.allow_controlnet),
            ("performance", not wp.slow_workers and w.speed < SLOW_WORKER_SPEED),
            ("performance", w.extra_slow_worker and not wp.extra_slow_workers),
            ("bridge_version", bridge_lacks),
            (NOT_REPORTED, w.maintenance and wp.user_id != w.owner_id),
            ("worker_id", bool(wp.workers) and (w.id in wp.workers) == wp.worker_blacklist),
        ]
    )


def capability_gaps(ctx: PopContext, wp: WaitingPrompt) -> list[str]:
    """`can_generate`'s bridge checks: img2img/painting by name, everything else `bridge_version`."""
    caps, params = ctx.capabilities, wp.params
    post_processing = params.get("post_processing") or []
    sampler_ok = params.get("sampler_name", "k_euler_a") in supported_samplers(
        ctx.worker.bridge_agent, bool(params.get("karras", True))
    )
    wanted = {
        "post-processing": bool(post_processing),
        "tiling": bool(params.get("tiling")),
        "return_control_map": bool(params.get("return_control_map")),
        "image_is_control": bool(params.get("image_is_control")),
        "qr_code": params.get("workflow") == "qr_code",
        "extra_texts": bool(params.get("extra_texts")),
        "hires_fix": bool(params.get("hires_fix")),
        "clip_skip": int(params.get("clip_skip") or 1) > 1,
        "lora_versions": any(lora.get("is_version") for lora in params.get("loras") or []),
    }
    named = matching_models(ctx, wp)
    bridge_lacks = (
        any(needed and cap not in caps for cap, needed in wanted.items())
        or not sampler_ok
        or any(pp not in caps for pp in post_processing)
        or (bool(named) and not capable_models(ctx, wp, named))
    )
    return _reasons(
        [
            ("img2img", wp.is_img2img and "img2img" not in caps),
            ("painting", wp.is_painting and "inpainting" not in caps),
            ("bridge_version", bridge_lacks),
        ]
    )


def _blacklisted(worker: Worker, prompt: str) -> bool:
    lowered = prompt.lower()
    return any(word and word.lower() in lowered for word in worker.blacklist)


def _needs_sdxl_controlnet(ctx: PopContext, wp: WaitingPrompt) -> bool:
    """A qr_code job for a worker serving an SDXL model is gated by `allow_sdxl_controlnet` (§1.1)."""
    return wp.params.get("workflow") == "qr_code" and any(
        ctx.reference.baseline(m) == "stable_diffusion_xl" for m in ctx.models
    )


def _python_checks(ctx: PopContext, wp: WaitingPrompt) -> list[str]:
    w, owner = ctx.worker, ctx.owner
    reasons = []
    if (wp.trusted_workers or not wp.safe_ip) and not owner.trusted:
        reasons.append("untrusted")
    if _blacklisted(w, wp.prompt):
        reasons.append("blacklist")
    reasons.extend(capability_gaps(ctx, wp))
    if wp.params.get("post_processing") and not w.allow_post_processing:
        reasons.append("post-processing")
    if _needs_sdxl_controlnet(ctx, wp) and not w.allow_sdxl_controlnet:
        reasons.append("controlnet")
    if w.limit_max_steps:
        models = matching_models(ctx, wp)
        if models and wp.accurate_steps > ctx.reference.step_limit(models[0]):
            reasons.append("step_count")
    requester = ctx.requesters.get(wp.user_id)
    if w.require_upfront_kudos and requester is not None and not _can_pay(requester, wp):
        reasons.append("kudos")
    return reasons


def _can_pay(requester: User, wp: WaitingPrompt) -> bool:
    """Trusted requesters always can; others need the kudos for what is left of the request."""
    return requester.trusted or requester.kudos >= wp.kudos * wp.n


def skip_reasons(ctx: PopContext, wp: WaitingPrompt) -> list[str]:
    """Every reason this worker cannot take the request, without duplicates; empty if it can."""
    reasons = _sql_filters(ctx, wp) + _python_checks(ctx, wp)
    return list(dict.fromkeys(reasons))


def priority(wp: WaitingPrompt, now: float) -> float:
    """`extra_priority`: the requester's kudos at submit time, +50 for every 10 s waited."""
    return wp.extra_priority + PRIORITY_STEP_BONUS * int((now - wp.created) // PRIORITY_STEP_S)


def ordered_candidates(
    requests: list[WaitingPrompt], owner: User, priority_user_ids: set[int], now: float
) -> list[WaitingPrompt]:
    """The owner's and priority users' requests first, then the rest by priority, oldest first."""

    def key(wp: WaitingPrompt) -> tuple[float, float]:
        return (-priority(wp, now), wp.created)

    favoured = {wp.id for wp in requests if wp.user_id == owner.id or wp.user_id in priority_user_ids}
    first = sorted((wp for wp in requests if wp.id in favoured), key=key)
    rest = sorted((wp for wp in requests if wp.id not in favoured), key=key)
    return first + rest


def choose_model(ctx: PopContext, wp: WaitingPrompt) -> str:
    """The model the job runs on: the first usable one in the request's (or the worker's) order."""
    models = capable_models(ctx, wp, matching_models(ctx, wp))
    return models[0] if models else ""


def skipped_counts(ctx: PopContext, requests: list[WaitingPrompt]) -> dict[str, int]:
    """The no-job response's `skipped`; some keys appear only when counted (§1.2 example)."""
    counts = dict.fromkeys(
        ("unsafe_ip", "img2img", "painting", "post-processing", "lora", "controlnet", "worker_id",
         "performance", "nsfw", "untrusted", "models", "bridge_version"),
        0,
    )  # fmt: skip
    for wp in requests:
        for reason in skip_reasons(ctx, wp):
            if reason != NOT_REPORTED:
                counts[reason] = counts.get(reason, 0) + 1
    return counts
