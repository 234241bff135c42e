"""`POST /v2/generate/pop`: check in, create the worker on first use, hand out 0..1 batch."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.batching import SLOW_TTL_BASELINES, job_ttl, safe_amount
from horde_worker_regen.localhorde.capabilities import bridge_capabilities
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import STALE_AFTER_S, User, WaitingPrompt, Worker, key_fingerprint
from horde_worker_regen.localhorde.errors import (
    ANON_FORBIDDEN_MESSAGE,
    UNRECOGNISED_MODELS_MESSAGE,
    WRONG_CREDENTIALS_MESSAGE,
    HordeError,
    invalid_api_key,
)
from horde_worker_regen.localhorde.faults import mangle
from horde_worker_regen.localhorde.jobs import report_suspicion, set_maintenance, start_generations
from horde_worker_regen.localhorde.kudos import uptime_reward
from horde_worker_regen.localhorde.matching import (
    PopContext,
    choose_model,
    ordered_candidates,
    skip_reasons,
    skipped_counts,
)
from horde_worker_regen.localhorde.payload import SourceLinks, job_payload, job_response, no_job_response
from horde_worker_regen.localhorde.schemas import POP_SCHEMA, PopArgs
from horde_worker_regen.localhorde.state import AnyWorker
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, URL_LIFETIME_S
from horde_worker_regen.localhorde.validation import contains_nul, read_json_object, require_argument, validate_schema

APIKEY_HELP = "The API Key corresponding to a registered user."
NAME_HELP = "The worker's unique name, to track contributions."
CHECK_IN_DEBOUNCE_S = 30
UPTIME_TICK_S = 600
MAX_MODELS = 300
MAX_BLACKLIST_WORDS = 200
MAX_BLACKLIST_WORD_LENGTH = 15
MAX_NAME_LENGTH = 100
FORBIDDEN_NAME_PARTS = ("colab", "tpu", "google")
UNTRUSTED_WORKER_LIMIT = 3
TRUSTED_WORKER_LIMIT = 20
FORCED_MAINTENANCE_MESSAGE = "This worker has been put into maintenance mode by a moderator"
FLAGGED_MESSAGE = "Your user has been flagged by our community for suspicious activity. Please contact us on discord."


async def parse_pop(request: web.Request) -> tuple[PopArgs, str]:
    """Schema validation, then reqparse's required arguments, then the NUL-byte check."""
    body = await read_json_object(request)
    validate_schema(body, POP_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", APIKEY_HELP)
    require_argument(body.get("name") is not None, "name", "json", NAME_HELP)
    if contains_nul(body):
        raise HordeError(400, "NulByteInPayload", "Null bytes are not allowed in the payload.")
    return PopArgs.from_body(body), request.headers["apikey"]


def authenticate_worker_owner(horde: LocalHorde, api_key: str) -> User:
    """The key's account; unknown → 401, anonymous → 403, flagged → 403 on every pop."""
    user = horde.state.user_by_key(api_key)
    if user is None:
        logger.info(f"local horde: pop with unknown key {key_fingerprint(api_key)}")
        raise invalid_api_key()
    if user.is_anon:
        raise HordeError(403, "AnonForbiddenWorker", ANON_FORBIDDEN_MESSAGE)
    if user.has_role("flagged"):
        raise HordeError(403, "WorkerFlaggedMaintenance", FLAGGED_MESSAGE)
    return user


def check_priority_usernames(horde: LocalHorde, usernames: list[str]) -> set[int]:
    """Every entry must be `alias#id`; returns the ids of the accounts that exist."""
    ids = set()
    for entry in usernames:
        alias, _, raw_id = entry.rpartition("#")
        if not alias or not raw_id.isdigit():
            raise HordeError(
                400,
                "InvalidPriorityUsername",
                "Priority usernames need to be provided in the form of 'alias#number'. Example: 'db0#1'",
            )
        if horde.state.user_by_alias(entry) is not None:
            ids.add(int(raw_id))
    return ids


def sanitize_name(name: str) -> str:
    """`sanitize_string`: HTML-escape, then trim."""
    return html.escape(name, quote=False).strip()


def get_or_create_worker(horde: LocalHorde, user: User, name: str, worker_class: type[AnyWorker]) -> AnyWorker:
    """The worker of that name, created on its first pop after the creation gates (§3.8).

    Names over 100 characters are truncated (and earn an untrusted owner a suspicion, §1.1), so
    later pops with the same long name find it. Names are unique across worker types: popping as
    one type under a name another type holds is `PolymorphicNameConflict` (`JobPopTemplate.validate`).
    """
    too_long = len(name) > MAX_NAME_LENGTH
    name = name[:MAX_NAME_LENGTH]
    worker = horde.state.worker_by_name(name)
    if worker is not None:
        if worker.kind != worker_class.kind or not isinstance(worker, worker_class):
            raise HordeError(400, "PolymorphicNameConflict", polymorphic_name_message(name))
        if worker.owner_id != user.id:
            raise HordeError(403, "WrongCredentials", WRONG_CREDENTIALS_MESSAGE)
        return worker
    if any(part in name.lower() for part in FORBIDDEN_NAME_PARTS):
        raise HordeError(400, "BadRequest", "Worker names cannot contain 'colab', 'tpu' or 'google'.")
    existing = len(horde.state.workers_of(user))
    if not user.trusted and existing > UNTRUSTED_WORKER_LIMIT:
        raise HordeError(403, "TooManyWorkers", "You have reached the maximum number of workers for your account.")
    if user.trusted and existing > max(TRUSTED_WORKER_LIMIT, user.worker_invited):
        raise HordeError(
            403, "TooManyWorkersTrusted", "You have reached the maximum number of workers for a trusted account."
        )
    created = horde.state.add_worker(name, user, worker_class)
    if too_long and horde.state.detect_suspicion:
        report_suspicion(created, user, "EXCESSIVE_NAME_LENGTH")
    return created


def polymorphic_name_message(name: str) -> str:
    """The server's words for a name another type of worker holds."""
    return (
        f"The specified name '{name}' is already taken by a different type of worker. Please choose a different name!"
    )


def known_models(horde: LocalHorde, user: User, models: list[str]) -> list[str]:
    """The first 300 names, minus those not in the reference (customizers keep every name)."""
    names = list(dict.fromkeys(models[:MAX_MODELS]))
    if user.has_role("customizer"):
        return names
    return [name for name in names if horde.reference.is_known(name)]


def check_in_due(worker: Worker, now: float) -> bool:
    """The settings are stored at most once every 30 s, or at every pop while the worker is < 30 s old."""
    last = worker.last_check_in
    return last is None or now - worker.created < CHECK_IN_DEBOUNCE_S or now - last >= CHECK_IN_DEBOUNCE_S


def accrues_uptime(worker: Worker, now: float) -> bool:
    """Uptime counts across check-ins less than 300 s apart, while not in maintenance nor paused."""
    last = worker.last_check_in
    return last is not None and now - last < STALE_AFTER_S and not worker.maintenance and not worker.paused


def check_in(horde: LocalHorde, worker: Worker, args: PopArgs, models: list[str]) -> None:
    """Store the worker's settings, at most once every 30 s (or always while it is < 30 s old)."""
    now = horde.clock.now()
    if not check_in_due(worker, now):
        return
    if not models:
        raise HordeError(400, "BadRequest", UNRECOGNISED_MODELS_MESSAGE)
    if accrues_uptime(worker, now):
        _accrue_uptime(horde, worker, now - (worker.last_check_in or now), len(models), args.allow_lora)
    worker.last_check_in = now
    worker.models = models
    worker.bridge_agent = args.bridge_agent
    worker.blacklist = [word[:MAX_BLACKLIST_WORD_LENGTH] for word in args.blacklist[:MAX_BLACKLIST_WORDS]]
    for field_name in (
        "max_pixels", "nsfw", "threads", "require_upfront_kudos", "allow_img2img", "allow_painting",
        "allow_unsafe_ipaddr", "allow_post_processing", "allow_controlnet", "allow_sdxl_controlnet",
        "allow_lora", "limit_max_steps", "extra_slow_worker",
    ):  # fmt: skip
        setattr(worker, field_name, getattr(args, field_name))


def _accrue_uptime(horde: LocalHorde, worker: Worker, seconds: float, model_count: int, allow_lora: bool) -> None:
    """Every 600 s online earns the uptime reward (escrowed for untrusted owners)."""
    worker.uptime += seconds
    worker.uptime_unrewarded += seconds
    owner = horde.state.users[worker.owner_id]
    while worker.uptime_unrewarded >= UPTIME_TICK_S:
        worker.uptime_unrewarded -= UPTIME_TICK_S
        reward = uptime_reward(model_count, allow_lora)
        worker.kudos_uptime += reward
        if owner.trusted:
            owner.kudos += reward
        else:
            owner.evaluating_kudos += reward


def batch_size(ctx: PopContext, wp: WaitingPrompt, amount: int) -> int:
    """How many images of the request this pop gets (§3.4), from the *stored* max_pixels."""
    params = wp.params
    return safe_amount(
        width=wp.width,
        height=wp.height,
        post_processing=params.get("post_processing") or [],
        transparent=bool(params.get("transparent")),
        max_pixels=ctx.worker.max_pixels,
        amount=amount,
        remaining=wp.n,
        disable_batching=wp.disable_batching or params.get("workflow") == "qr_code",
    )


def ttl_of(horde: LocalHorde, worker: Worker, wp: WaitingPrompt) -> int:
    """The per-image ttl (§3.5); tripled when a model the request *names* has a slow baseline, so a
    request that names no model never is."""
    return job_ttl(
        width=wp.width,
        height=wp.height,
        steps=wp.accurate_steps,
        control_type=bool(wp.params.get("control_type")),
        slow_baseline=any(horde.reference.baseline(m) in SLOW_TTL_BASELINES for m in wp.models),
        extra_slow_worker=worker.extra_slow_worker,
    )


def start_job(
    horde: LocalHorde, request: web.Request, ctx: PopContext, wp: WaitingPrompt, amount: int
) -> dict[str, Any]:
    """Create the batch's jobs and build the response (model, size, ttl, URLs)."""
    worker = ctx.worker
    model = choose_model(ctx, wp)
    if horde.faults.take("pop", "empty_model"):
        model = ""
    count, ttl = batch_size(ctx, wp, amount), ttl_of(horde, worker, wp)
    fake = worker.paused and wp.user_id != worker.owner_id
    jobs = start_generations(horde.state, wp, worker, model=model, count=count, ttl=ttl, fake=fake)
    base, now = horde.public_base(request), horde.clock.now()
    urls = [
        horde.signer.url(base, "PUT", GENERATIONS_BUCKET, f"{job.id}.webp", issued=now, lifetime=URL_LIFETIME_S)
        for job in jobs
    ]
    sources = SourceLinks(base, horde.signer, horde.state.objects, inline="r2_source" not in ctx.capabilities)
    logger.info(f"local horde: '{worker.name}' popped {count} of request {wp.id} on '{model}' (ttl {ttl})")
    answer = job_response(
        wp,
        ids=[job.id for job in jobs],
        payload=job_payload(wp, seed=jobs[0].seed, n_iter=len(jobs)),
        model=model,
        ttl=ttl,
        upload_urls=urls,
        sources=sources,
    )
    if (rule := horde.faults.take("pop", "mangle")) and not mangle(answer, rule):
        logger.warning(f"local horde: mangle fault #{rule.id}: path {rule.path} is not in the pop answer")
    return answer


async def pop_handler(request: web.Request) -> web.Response:
    """`POST /v2/generate/pop`."""
    horde = horde_of(request)
    args, api_key = await parse_pop(request)
    user = authenticate_worker_owner(horde, api_key)
    priority_ids = check_priority_usernames(horde, args.priority_usernames)
    worker = get_or_create_worker(horde, user, sanitize_name(args.name), Worker)
    models = known_models(horde, user, args.models)
    check_in(horde, worker, args, models)
    if horde.faults.take("pop", "maintenance"):
        set_maintenance(worker, True, FORCED_MAINTENANCE_MESSAGE)
    ctx = PopContext(
        worker=worker,
        owner=user,
        models=tuple(models),
        capabilities=bridge_capabilities(worker.bridge_agent),
        reference=horde.reference,
        requesters=horde.state.users,
    )
    requests = horde.state.active_requests()
    for wp in ordered_candidates(requests, user, priority_ids, horde.clock.now()):
        if not skip_reasons(ctx, wp):
            return web.json_response(start_job(horde, request, ctx, wp, args.amount))
    if worker.maintenance:
        raise HordeError(403, "WorkerMaintenance", worker.maintenance_msg)
    return web.json_response(no_job_response(skipped_counts(ctx, requests)))
