"""`POST /v2/interrogate/pop`: an alchemist checks in and is handed up to `amount` forms.

Order of the server's `InterrogatePop.post`: schema validation (one form name outside the enum
fails the whole pop), reqparse (`apikey`, `name`), every priority username must contain `#`, then the
key and the worker (`JobPopTemplate.validate`: names are unique across worker types), the check-in
(debounced as for image workers; `max_tiles` is stored as the alchemist's `max_power`), then the
forms. With work: `{"forms": [...], "skipped": {}}`; without: `{"forms": null, "skipped": {...}}`,
or 403 `WorkerMaintenance` for an alchemist in maintenance.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker, Interrogation, InterrogationForm
from horde_worker_regen.localhorde.alchemy_forms import is_post_processor
from horde_worker_regen.localhorde.alchemy_jobs import start_form
from horde_worker_regen.localhorde.alchemy_matching import (
    AlchemyPopContext,
    ordered_candidates,
    refusal,
    visible_skipped,
)
from horde_worker_regen.localhorde.alchemy_schemas import INTERROGATE_POP_SCHEMA, InterrogatePopArgs
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.errors import HordeError
from horde_worker_regen.localhorde.faults import mangle
from horde_worker_regen.localhorde.jobs import set_maintenance
from horde_worker_regen.localhorde.kudos import ALCHEMIST_UPTIME_REWARD
from horde_worker_regen.localhorde.pop import (
    FORCED_MAINTENANCE_MESSAGE,
    UPTIME_TICK_S,
    accrues_uptime,
    authenticate_worker_owner,
    check_in_due,
    get_or_create_worker,
    sanitize_name,
)
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, SOURCES_BUCKET, URL_LIFETIME_S
from horde_worker_regen.localhorde.validation import read_json_object, require_argument, validate_schema

ENDPOINT = "interrogate_pop"
APIKEY_HELP = "The API Key corresponding to a registered user"
NAME_HELP = "The worker's unique name, to track contributions"
PRIORITY_USERNAME_MESSAGE = "Priority usernames need to be provided in the form of 'alias#number'. Example: 'db0#1'"
# With no forms, the server stores `caption` as what the alchemist offers (matching still uses the pop's list).
DEFAULT_STORED_FORMS = ["caption"]


async def parse_interrogate_pop(request: web.Request) -> tuple[InterrogatePopArgs, str]:
    """Schema, reqparse's required arguments, then the `#` in every priority username."""
    body = await read_json_object(request)
    validate_schema(body, INTERROGATE_POP_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", APIKEY_HELP)
    require_argument(body.get("name") is not None, "name", "json", NAME_HELP)
    args = InterrogatePopArgs.from_body(body)
    if any("#" not in entry for entry in args.priority_usernames):
        raise HordeError(400, "BadRequest", PRIORITY_USERNAME_MESSAGE)
    return args, request.headers["apikey"]


def check_in_alchemist(horde: LocalHorde, worker: AlchemistWorker, args: InterrogatePopArgs) -> None:
    """Store the alchemist's settings, at most once every 30 s; every 600 s online earns its owner 40
    kudos (never escrowed)."""
    now = horde.clock.now()
    if not check_in_due(worker, now):
        return
    if accrues_uptime(worker, now) and worker.last_check_in is not None:
        _accrue_uptime(horde, worker, now - worker.last_check_in)
    worker.last_check_in = now
    worker.bridge_agent = sanitize_name(args.bridge_agent)
    worker.threads = args.threads
    worker.max_tiles = args.max_tiles
    worker.require_upfront_kudos = False  # the interrogation pop has no such argument
    worker.forms = list(dict.fromkeys(args.forms)) or list(DEFAULT_STORED_FORMS)


def _accrue_uptime(horde: LocalHorde, worker: AlchemistWorker, seconds: float) -> None:
    worker.uptime += seconds
    worker.uptime_unrewarded += seconds
    owner = horde.state.users[worker.owner_id]
    while worker.uptime_unrewarded >= UPTIME_TICK_S:
        worker.uptime_unrewarded -= UPTIME_TICK_S
        worker.kudos_uptime += ALCHEMIST_UPTIME_REWARD
        owner.kudos += ALCHEMIST_UPTIME_REWARD


def priority_user_ids(horde: LocalHorde, owner_id: int, usernames: list[str]) -> set[int]:
    """The owner and every priority username whose id part names an existing account."""
    ids = {owner_id}
    for entry in usernames:
        user = horde.state.user_by_alias(entry)
        if user is not None:
            ids.add(user.id)
    return ids


def form_payload(payload: dict[str, Any] | None) -> dict[str, str]:
    """The payload as marshalled (a wildcard of strings): every value as a string, nulls dropped."""
    return {name: str(value) for name, value in (payload or {}).items() if value is not None}


def form_entry(
    horde: LocalHorde, request: web.Request, form: InterrogationForm, interrogation: Interrogation
) -> dict[str, Any]:
    """One form of the answer: `payload` only when not empty, `r2_upload` only for post-processors."""
    base, now = horde.public_base(request), horde.clock.now()
    entry: dict[str, Any] = {"id": form.id, "form": form.name}
    if payload := form_payload(form.payload):
        entry["payload"] = payload
    source = interrogation.source
    if source.url is not None:
        entry["source_image"] = source.url
    else:
        key = source.key or ""
        entry["source_image"] = horde.signer.url(base, "GET", SOURCES_BUCKET, key, issued=now, lifetime=URL_LIFETIME_S)
    if is_post_processor(form.name):
        key = f"{form.id}.webp"
        entry["r2_upload"] = horde.signer.url(base, "PUT", GENERATIONS_BUCKET, key, issued=now, lifetime=URL_LIFETIME_S)
    return entry


def pop_forms(
    horde: LocalHorde, request: web.Request, ctx: AlchemyPopContext, priority_ids: set[int], amount: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Start up to `amount` forms (at least one); returns their entries and the skip counts."""
    store = horde.state.alchemy
    candidates = ((form, store.interrogations[form.i_id]) for form in list(store.forms.values()))
    entries: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for form, interrogation in ordered_candidates(ctx, candidates, priority_ids):
        if (reason := refusal(ctx, form, interrogation)) is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        start_form(horde.state, form, interrogation, ctx.worker)
        entries.append(form_entry(horde, request, form, interrogation))
        if len(entries) >= amount:
            break
    return entries, skipped


async def interrogate_pop_handler(request: web.Request) -> web.Response:
    """`POST /v2/interrogate/pop`."""
    horde = horde_of(request)
    args, api_key = await parse_interrogate_pop(request)
    user = authenticate_worker_owner(horde, api_key)
    worker = get_or_create_worker(horde, user, sanitize_name(args.name), AlchemistWorker)
    check_in_alchemist(horde, worker, args)
    if horde.faults.take(ENDPOINT, "maintenance"):
        set_maintenance(worker, True, FORCED_MAINTENANCE_MESSAGE)
    ctx = AlchemyPopContext(worker=worker, owner=user, forms=frozenset(args.forms), requesters=horde.state.users)
    ids = priority_user_ids(horde, user.id, args.priority_usernames)
    entries, skipped = pop_forms(horde, request, ctx, ids, args.amount)
    if entries:
        logger.info(f"local horde: alchemist '{worker.name}' popped {[e['form'] for e in entries]}")
        answer: dict[str, Any] = {"forms": entries, "skipped": {}}
        if (rule := horde.faults.take(ENDPOINT, "mangle")) and not mangle(answer, rule):
            logger.warning(f"local horde: mangle fault #{rule.id}: path {rule.path} is not in the pop answer")
        return web.json_response(answer)
    if worker.maintenance:
        raise HordeError(403, "WorkerMaintenance", worker.maintenance_msg)
    return web.json_response({"forms": None, "skipped": visible_skipped(skipped)})
