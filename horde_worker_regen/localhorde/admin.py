"""The admin API (`/_admin/...`), answered only to loopback clients.

GET    /_admin/faults                     → {"faults": [rule, ...]}
POST   /_admin/faults   rule | {"rules": [rule, ...]}  → 201 {"faults": [added, ...]}
DELETE /_admin/faults[?endpoint=pop]      → {"faults": [remaining, ...]}
DELETE /_admin/faults/{id}                → {"removed": bool}
POST   /_admin/users    {"username", "kudos"?, "trusted"?, "roles"?, "api_key"?, "id"?}
                                          → 201 {"id", "username", "alias", "api_key"}
POST   /_admin/requests {"username", "body": <async body>} → 201 {"id", "kudos"}
POST   /_admin/interrogations {"username", "body": <interrogate async body>, "image_size"?: [w, h]}
                                          → 201 {"id"}   (image_size: needed for a URL source)
POST   /_admin/models   {"name", "baseline"?, "inpainting"?, "nsfw"?, ...} → 201 {"name"}
GET    /_admin/clock                      → {"now", "fake"}
POST   /_admin/clock    {"advance": seconds} → {"now"}   (409 on the system clock)
POST   /_admin/sweep                      → {"aborted", "expired", "aborted_forms", "expired_interrogations"}
POST   /_admin/workers/{name}/maintenance {"maintenance": bool, "message"?} → {"maintenance", ...}
GET    /_admin/state                      → users (without keys), workers, requests, jobs, interrogations
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker
from horde_worker_regen.localhorde.alchemy_requests import queue_interrogation
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import ModelEntry, UserConfig
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import User, Worker
from horde_worker_regen.localhorde.faults import FaultRule
from horde_worker_regen.localhorde.reference import ModelRecord
from horde_worker_regen.localhorde.requester import queue_request

ADMIN_PREFIX = "/_admin"


class QueueRequest(BaseModel):
    """Body of `POST /_admin/requests`."""

    model_config = ConfigDict(extra="forbid")

    username: str
    body: dict[str, Any]
    unsafe_ip: bool = False


class QueueInterrogation(BaseModel):
    """Body of `POST /_admin/interrogations`."""

    model_config = ConfigDict(extra="forbid")

    username: str
    body: dict[str, Any]
    image_size: tuple[int, int] | None = None
    unsafe_ip: bool = False


class ClockMove(BaseModel):
    """Body of `POST /_admin/clock`."""

    advance: float = Field(ge=0)


class MaintenanceSwitch(BaseModel):
    """Body of `POST /_admin/workers/{name}/maintenance`."""

    maintenance: bool = True
    message: str | None = None


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse the admin API to anything but loopback, and turn bad bodies into 400s."""
    if not request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    if not horde_of(request).config.admin_enabled or not _is_loopback(request.remote):
        return web.json_response({"message": "The admin API is only served to loopback clients."}, status=403)
    try:
        return await handler(request)
    except (ValidationError, ValueError, TypeError, KeyError) as error:
        return web.json_response({"message": f"Bad admin request: {error}"}, status=400)


def _dump(rule: FaultRule) -> dict[str, Any]:
    return rule.model_dump()


async def list_faults(request: web.Request) -> web.Response:
    """`GET /_admin/faults`."""
    return web.json_response({"faults": [_dump(r) for r in horde_of(request).faults.rules()]})


async def add_faults(request: web.Request) -> web.Response:
    """`POST /_admin/faults`."""
    body = await request.json()
    rules = body.get("rules", [body]) if isinstance(body, dict) else body
    faults = horde_of(request).faults
    added = [faults.add(rule) for rule in rules]
    return web.json_response({"faults": [_dump(r) for r in added]}, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """`DELETE /_admin/faults`."""
    faults = horde_of(request).faults
    faults.clear(request.query.get("endpoint"))
    return web.json_response({"faults": [_dump(r) for r in faults.rules()]})


async def remove_fault(request: web.Request) -> web.Response:
    """`DELETE /_admin/faults/{rule_id}`."""
    removed = horde_of(request).faults.remove(int(request.match_info["rule_id"]))
    return web.json_response({"removed": removed})


async def add_user(request: web.Request) -> web.Response:
    """`POST /_admin/users`."""
    spec = UserConfig.model_validate(await request.json())
    user = horde_of(request).add_user(
        spec.username,
        api_key=spec.api_key,
        user_id=spec.id,
        kudos=spec.kudos,
        trusted=spec.trusted,
        roles=spec.roles,
        worker_invited=spec.worker_invited,
    )
    body = {"id": user.id, "username": user.username, "alias": user.alias, "api_key": user.api_key}
    return web.json_response(body, status=201)


def _user_named(horde: LocalHorde, username: str) -> User | None:
    return next((u for u in horde.state.users.values() if u.username == username), None)


async def add_request(request: web.Request) -> web.Response:
    """`POST /_admin/requests`: queue work for a user without their key."""
    horde = horde_of(request)
    spec = QueueRequest.model_validate(await request.json())
    user = _user_named(horde, spec.username)
    if user is None:
        return web.json_response({"message": f"no user named {spec.username!r}"}, status=404)
    wp = queue_request(horde, user, spec.body, safe_ip=not spec.unsafe_ip)
    return web.json_response({"id": wp.id, "kudos": round(wp.kudos * wp.n, 2)}, status=201)


async def add_interrogation(request: web.Request) -> web.Response:
    """`POST /_admin/interrogations`: queue alchemy for a user without their key."""
    horde = horde_of(request)
    spec = QueueInterrogation.model_validate(await request.json())
    user = _user_named(horde, spec.username)
    if user is None:
        return web.json_response({"message": f"no user named {spec.username!r}"}, status=404)
    interrogation = queue_interrogation(horde, user, spec.body, image_size=spec.image_size, safe_ip=not spec.unsafe_ip)
    return web.json_response({"id": interrogation.id}, status=201)


async def add_model(request: web.Request) -> web.Response:
    """`POST /_admin/models`."""
    entry = ModelEntry.model_validate(await request.json())
    horde_of(request).reference.register(ModelRecord(**entry.model_dump()))
    return web.json_response({"name": entry.name}, status=201)


async def get_clock(request: web.Request) -> web.Response:
    """`GET /_admin/clock`."""
    horde = horde_of(request)
    return web.json_response({"now": horde.clock.now(), "fake": isinstance(horde.clock, FakeClock)})


async def move_clock(request: web.Request) -> web.Response:
    """`POST /_admin/clock`."""
    horde = horde_of(request)
    move = ClockMove.model_validate(await request.json())
    if not isinstance(horde.clock, FakeClock):
        return web.json_response({"message": "The local horde runs on the system clock."}, status=409)
    return web.json_response({"now": horde.clock.advance(move.advance)})


async def run_sweep(request: web.Request) -> web.Response:
    """`POST /_admin/sweep`."""
    report = horde_of(request).sweep()
    return web.json_response(
        {
            "aborted": report.aborted,
            "expired": report.expired,
            "aborted_forms": report.aborted_forms,
            "expired_interrogations": report.expired_interrogations,
        }
    )


async def switch_maintenance(request: web.Request) -> web.Response:
    """`POST /_admin/workers/{name}/maintenance`."""
    horde = horde_of(request)
    switch = MaintenanceSwitch.model_validate(await request.json())
    name = request.match_info["name"]
    worker = horde.worker(name)
    if worker is None:
        return web.json_response({"message": f"no worker named {name!r}"}, status=404)
    horde.set_maintenance(name, switch.maintenance, switch.message)
    return web.json_response({"maintenance": worker.maintenance, "maintenance_msg": worker.maintenance_msg})


def _worker_summary(worker: Worker) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "id": worker.id,
        "name": worker.name,
        "type": worker.kind,
        "maintenance": worker.maintenance,
        "aborted_jobs": worker.aborted_jobs,
        "fulfilments": worker.fulfilments,
        "kudos": worker.kudos_generated + worker.kudos_uptime,
    }
    if isinstance(worker, AlchemistWorker):
        summary.update(forms=worker.forms, max_tiles=worker.max_tiles, forms_done=worker.forms_done)
    return summary


def _interrogations(horde: LocalHorde) -> list[dict[str, Any]]:
    store = horde.state.alchemy
    return [
        {
            "id": i.id,
            "tiles": i.image_tiles,
            "forms": [
                {"id": f.id, "name": f.name, "state": f.state.value, "abort_count": f.abort_count, "kudos": f.kudos}
                for f in store.forms_of(i)
            ],
        }
        for i in store.interrogations.values()
    ]


async def state_summary(request: web.Request) -> web.Response:
    """`GET /_admin/state`: a snapshot for debugging (API keys left out)."""
    horde = horde_of(request)
    state = horde.state
    return web.json_response(
        {
            "users": [
                {"id": u.id, "alias": u.alias, "kudos": u.kudos, "trusted": u.trusted} for u in state.users.values()
            ],
            "workers": [_worker_summary(w) for w in state.workers.values()],
            "requests": [
                {"id": wp.id, "n": wp.n, "jobs": wp.jobs, "faulted": wp.faulted} for wp in state.requests.values()
            ],
            "jobs": [
                {"id": pg.id, "wp_id": pg.wp_id, "completed": pg.is_completed, "faulted": pg.faulted}
                for pg in state.generations.values()
            ],
            "interrogations": _interrogations(horde),
        }
    )


def add_admin_routes(app: web.Application) -> None:
    """Register the admin API."""
    p = ADMIN_PREFIX
    app.router.add_get(f"{p}/faults", list_faults)
    app.router.add_post(f"{p}/faults", add_faults)
    app.router.add_delete(f"{p}/faults", clear_faults)
    app.router.add_delete(f"{p}/faults/{{rule_id}}", remove_fault)
    app.router.add_post(f"{p}/users", add_user)
    app.router.add_post(f"{p}/requests", add_request)
    app.router.add_post(f"{p}/interrogations", add_interrogation)
    app.router.add_post(f"{p}/models", add_model)
    app.router.add_get(f"{p}/clock", get_clock)
    app.router.add_post(f"{p}/clock", move_clock)
    app.router.add_post(f"{p}/sweep", run_sweep)
    app.router.add_post(f"{p}/workers/{{name}}/maintenance", switch_maintenance)
    app.router.add_get(f"{p}/state", state_summary)
