"""Account, worker and status endpoints: `find_user`, `workers/{id}` (GET/PUT),
`workers/name/{name}`, `status/heartbeat`, `status/models`, `status/modes`, `stats/img/models`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import User, Worker
from horde_worker_regen.localhorde.errors import (
    ANON_FORBIDDEN_MESSAGE,
    NOT_MODERATOR_MESSAGE,
    NOT_OWNER_MESSAGE,
    HordeError,
    invalid_api_key,
)
from horde_worker_regen.localhorde.jobs import set_maintenance
from horde_worker_regen.localhorde.schemas import WORKER_MODIFY_SCHEMA, WorkerModifyArgs
from horde_worker_regen.localhorde.validation import read_json_object, require_argument, validate_schema

SERVER_VERSION = "5.1.5"


def _round(value: float) -> float:
    return round(value, 2)


def user_details(horde: LocalHorde, user: User) -> dict[str, Any]:
    """`UserDetails`, with the fields a worker reads."""
    workers = horde.state.workers_of(user)
    return {
        "username": user.alias,
        "id": user.id,
        "kudos": _round(user.kudos),
        "evaluating_kudos": _round(user.evaluating_kudos),
        "concurrency": 30,
        "worker_invited": user.worker_invited,
        "moderator": user.has_role("moderator"),
        "kudos_details": dict.fromkeys(
            ("accumulated", "gifted", "donated", "admin", "received", "recurring", "awarded"), 0.0
        ),
        "worker_count": len(workers),
        "worker_ids": [w.id for w in workers],
        "sharedkey_ids": [],
        "trusted": user.trusted,
        "flagged": user.has_role("flagged"),
        "vpn": False,
        "service": False,
        "education": False,
        "customizer": user.has_role("customizer"),
        "special": user.has_role("special"),
        "pseudonymous": False,
        "account_age": int(horde.clock.now() - user.created),
        "records": {
            "usage": {"megapixelsteps": 0.0, "tokens": 0},
            "contribution": {"megapixelsteps": _round(user.megapixelsteps_generated), "tokens": 0},
            "fulfillment": {"image": user.images_generated, "text": 0, "interrogation": user.forms_fulfilled},
            "request": {"image": user.images_requested, "text": 0, "interrogation": user.forms_requested},
        },
    }


def worker_details(horde: LocalHorde, worker: Worker, *, privileged: bool) -> dict[str, Any]:
    """`WorkerDetails`; `paused`, `owner` and `suspicious` only for the owner or a moderator."""
    owner = horde.state.users[worker.owner_id]
    details: dict[str, Any] = {
        "type": worker.kind,
        "name": worker.name,
        "id": worker.id,
        "online": not worker.is_stale(horde.clock.now()),
        "requests_fulfilled": worker.fulfilments,
        "kudos_rewards": _round(worker.kudos_generated + worker.kudos_uptime),
        "kudos_details": {"generated": _round(worker.kudos_generated), "uptime": worker.kudos_uptime},
        "performance": _performance(worker),
        "threads": worker.threads,
        "uptime": int(worker.uptime),
        "maintenance_mode": worker.maintenance,
        "info": worker.info or None,
        "nsfw": worker.nsfw,
        "trusted": owner.trusted,
        "flagged": owner.has_role("flagged"),
        "uncompleted_jobs": worker.uncompleted_jobs,
        "models": list(worker.models),
        "forms": list(worker.forms) if isinstance(worker, AlchemistWorker) else [],
        "team": {"name": None, "id": worker.team or None},
        "bridge_agent": worker.bridge_agent,
        "max_pixels": worker.max_pixels,
        "megapixelsteps_generated": _round(worker.megapixelsteps_generated),
        "img2img": worker.allow_img2img,
        "painting": worker.allow_painting,
        "post-processing": worker.allow_post_processing,
        "lora": worker.allow_lora,
        "controlnet": worker.allow_controlnet,
        "sdxl_controlnet": worker.allow_sdxl_controlnet,
    }
    if privileged:
        details.update(paused=worker.paused, owner=owner.alias, suspicious=worker.suspicion, ipaddr="127.0.0.1")
    return details


def _performance(worker: Worker) -> str:
    if isinstance(worker, AlchemistWorker):
        if not worker.performances:
            return "No requests fulfilled yet"
        return f"{round(worker.speed, 1)} seconds per form"
    return f"{round(worker.speed / 1e6, 1)} megapixelsteps per second"


def _viewer_is_privileged(horde: LocalHorde, request: web.Request, worker: Worker) -> bool:
    viewer = horde.state.user_by_key(request.headers.get("apikey", ""))
    return viewer is not None and (viewer.id == worker.owner_id or viewer.has_role("moderator"))


def _worker_or_404(worker: Worker | None, wanted: str) -> Worker:
    if worker is None:
        raise HordeError(404, "WorkerNotFound", f"Worker with ID '{wanted}' not found.")
    return worker


async def find_user_handler(request: web.Request) -> web.Response:
    """`GET /v2/find_user`: 401 without a key, 404 `UserNotFound` for an unknown one."""
    horde = horde_of(request)
    api_key = request.headers.get("apikey")
    if not api_key:
        raise invalid_api_key()
    user = horde.state.user_by_key(api_key)
    if user is None:
        raise HordeError(404, "UserNotFound", "User with the sent API key not found.")
    return web.json_response(user_details(horde, user))


async def worker_handler(request: web.Request) -> web.Response:
    """`GET /v2/workers/{worker_id}`."""
    horde = horde_of(request)
    wanted = request.match_info["worker_id"]
    worker = _worker_or_404(horde.state.workers.get(wanted), wanted)
    return web.json_response(worker_details(horde, worker, privileged=_viewer_is_privileged(horde, request, worker)))


async def worker_by_name_handler(request: web.Request) -> web.Response:
    """`GET /v2/workers/name/{name}` (exact name)."""
    horde = horde_of(request)
    wanted = request.match_info["name"]
    worker = _worker_or_404(horde.state.worker_by_name(wanted), wanted)
    return web.json_response(worker_details(horde, worker, privileged=_viewer_is_privileged(horde, request, worker)))


def _apply_modification(horde: LocalHorde, worker: Worker, args: WorkerModifyArgs, is_mod: bool) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    if args.paused is not None and not is_mod:
        raise HordeError(403, "NotModerator", NOT_MODERATOR_MESSAGE)
    if args.name is not None and args.name != worker.name:
        if horde.state.worker_by_name(args.name) is not None:
            raise HordeError(
                400, "WorkerNameAlreadyExists", f"The specified worker name '{args.name}' is already taken!"
            )
        horde.state.rename_worker(worker, args.name)
        changed["name"] = args.name
    if args.maintenance is not None:
        set_maintenance(worker, args.maintenance, args.maintenance_msg)
        changed["maintenance"] = args.maintenance
    if args.paused is not None:
        worker.paused = args.paused
        changed["paused"] = args.paused
    if args.info is not None:
        worker.info = args.info
        changed["info"] = args.info
    if args.team is not None:
        worker.team = args.team
        changed["team"] = args.team
    return changed


async def modify_worker_handler(request: web.Request) -> web.Response:
    """`PUT /v2/workers/{worker_id}`: owner or moderator; returns the fields it changed."""
    horde = horde_of(request)
    body = await read_json_object(request)
    validate_schema(body, WORKER_MODIFY_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", "The Moderator or Owner API key.")
    user = horde.state.user_by_key(request.headers["apikey"])
    if user is None:
        raise invalid_api_key()
    wanted = request.match_info["worker_id"]
    worker = _worker_or_404(horde.state.workers.get(wanted), wanted)
    if user.is_anon:
        raise HordeError(403, "AnonForbiddenWorker", ANON_FORBIDDEN_MESSAGE)
    is_mod = user.has_role("moderator")
    if worker.owner_id != user.id and not is_mod:
        raise HordeError(403, "NotOwner", NOT_OWNER_MESSAGE)
    args = WorkerModifyArgs.from_body(body)
    fields = ("maintenance", "paused", "info", "name", "team")
    if all(getattr(args, name) is None for name in fields):
        raise HordeError(400, "NoWorkerModSelected", "No valid worker modification selected!")
    return web.json_response(_apply_modification(horde, worker, args, is_mod))


async def heartbeat_handler(request: web.Request) -> web.Response:
    """`GET /v2/status/heartbeat`."""
    horde = horde_of(request)
    now = horde.clock.now()
    online = [w for w in horde.state.workers.values() if not w.is_stale(now)]
    return web.json_response(
        {
            "message": "OK",
            "version": SERVER_VERSION,
            "queue": sum(wp.n for wp in horde.state.active_requests()),
            "threads": sum(w.threads for w in online),
            "active_count": len(online),
            "db_connection": True,
        }
    )


async def status_models_handler(request: web.Request) -> web.Response:
    """`GET /v2/status/models`: workers, queue and demand per model."""
    horde = horde_of(request)
    if request.query.get("type", "image") != "image":
        return web.json_response([])
    now = horde.clock.now()
    online = [w for w in horde.state.workers.values() if not w.is_stale(now)]
    names = {m for w in online for m in w.models} | {m for wp in horde.state.active_requests() for m in wp.models}
    body = []
    for name in sorted(names):
        serving = [w for w in online if name in w.models]
        queued = [wp for wp in horde.state.active_requests() if name in wp.models]
        pixelsteps = sum(wp.things * wp.n for wp in queued)
        speed = sum(w.speed for w in serving) / len(serving) if serving else 0.0
        body.append(
            {
                "name": name,
                "count": len(serving),
                "performance": _round(speed),
                "queued": pixelsteps,
                "jobs": sum(wp.n for wp in queued),
                "eta": int(pixelsteps / speed) if speed else 10000,
                "type": "image",
            }
        )
    return web.json_response(body)


async def modes_handler(request: web.Request) -> web.Response:
    """`GET /v2/status/modes`: the local horde is never in horde-wide maintenance."""
    return web.json_response({"maintenance_mode": False, "invite_only_mode": False})


async def stats_models_handler(request: web.Request) -> web.Response:
    """`GET /v2/stats/img/models`: images generated per model over a day, a month and in total."""
    horde = horde_of(request)
    return web.json_response(horde.state.model_stats.snapshot(horde.clock.now()))
