"""`create_app`: the aiohttp application of the local horde.

The horde API is served under `/api/v2/...` (so `horde_url` is `http://host:port/api`) and, for
convenience, under `/v2/...` as well. The R2 stand-in lives under `/r2/...`, the admin API under
`/_admin/...`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde import alchemy_requests, requester, uploads, workers
from horde_worker_regen.localhorde.admin import add_admin_routes, admin_guard
from horde_worker_regen.localhorde.alchemy_pop import interrogate_pop_handler
from horde_worker_regen.localhorde.alchemy_submit import interrogate_submit_handler
from horde_worker_regen.localhorde.clock import Clock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import HORDE_KEY, LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.errors import error_middleware
from horde_worker_regen.localhorde.faults import make_fault_middleware
from horde_worker_regen.localhorde.pop import pop_handler
from horde_worker_regen.localhorde.reference import ModelReference
from horde_worker_regen.localhorde.submit import submit_handler
from horde_worker_regen.localhorde.urls import BUCKET_PREFIX, GENERATIONS_BUCKET, SOURCES_BUCKET

API_PREFIXES = ("/api", "")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path under /v2, handler, endpoint name used by fault rules)
API_ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("POST", "/v2/generate/pop", pop_handler, "pop"),
    ("POST", "/v2/generate/submit", submit_handler, "submit"),
    ("POST", "/v2/generate/async", requester.async_handler, "async"),
    ("GET", "/v2/generate/check/{request_id}", requester.check_handler, "check"),
    ("GET", "/v2/generate/status/{request_id}", requester.status_handler, "status"),
    ("DELETE", "/v2/generate/status/{request_id}", requester.cancel_handler, "status"),
    ("GET", "/v2/find_user", workers.find_user_handler, "find_user"),
    ("GET", "/v2/workers/name/{name}", workers.worker_by_name_handler, "worker_by_name"),
    ("GET", "/v2/workers/{worker_id}", workers.worker_handler, "worker"),
    ("PUT", "/v2/workers/{worker_id}", workers.modify_worker_handler, "worker_modify"),
    ("GET", "/v2/status/heartbeat", workers.heartbeat_handler, "heartbeat"),
    ("GET", "/v2/status/models", workers.status_models_handler, "status_models"),
    ("GET", "/v2/status/modes", workers.modes_handler, "modes"),
    ("GET", "/v2/stats/img/models", workers.stats_models_handler, "stats_models"),
    ("POST", "/v2/interrogate/pop", interrogate_pop_handler, "interrogate_pop"),
    ("POST", "/v2/interrogate/submit", interrogate_submit_handler, "interrogate_submit"),
    ("POST", "/v2/interrogate/async", alchemy_requests.interrogate_async_handler, "interrogate_async"),
    ("GET", "/v2/interrogate/status/{request_id}", alchemy_requests.interrogate_status_handler, "interrogate_status"),
    (
        "DELETE",
        "/v2/interrogate/status/{request_id}",
        alchemy_requests.interrogate_cancel_handler,
        "interrogate_status",
    ),
)
OBJECT_ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("PUT", f"{BUCKET_PREFIX}/{GENERATIONS_BUCKET}/{{key}}", uploads.upload_handler, "upload"),
    ("GET", f"{BUCKET_PREFIX}/{GENERATIONS_BUCKET}/{{key}}", uploads.download_handler, "download"),
    ("GET", f"{BUCKET_PREFIX}/{SOURCES_BUCKET}/{{key}}", uploads.source_handler, "source"),
)
ENDPOINT_NAMES: dict[Handler, str] = {handler: name for _, _, handler, name in API_ROUTES + OBJECT_ROUTES}
# DELETE /status shares the "status" name with GET (and DELETE /interrogate/status "interrogate_status"),
# which is what a fault rule on that name means.


def endpoint_of(request: web.Request) -> str | None:
    """The fault-rule name of the endpoint a request was routed to (None: not a horde endpoint)."""
    return ENDPOINT_NAMES.get(request.match_info.handler)


def make_change_middleware(horde: LocalHorde) -> Any:
    """Build the outermost middleware: once a request has been handled (whatever the answer, and after
    every inner middleware has seen it), announce that the horde's state may have changed."""

    @web.middleware
    async def notify_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            horde.changes.notify()

    return notify_changes


def _seed_user(horde: LocalHorde, username: str) -> User:
    user = next((u for u in horde.state.users.values() if u.username == username), None)
    if user is None:
        raise ValueError(f"seeded request for unknown user {username!r}")
    return user


def seed_requests(horde: LocalHorde) -> None:
    """Queue the image requests and the alchemy listed in the configuration."""
    for seed in horde.config.requests:
        user = _seed_user(horde, seed.username)
        for _ in range(seed.copies):
            requester.queue_request(horde, user, dict(seed.body))
    for alchemy in horde.config.interrogations:
        user = _seed_user(horde, alchemy.username)
        for _ in range(alchemy.copies):
            alchemy_requests.queue_interrogation(horde, user, dict(alchemy.body), image_size=alchemy.image_size)


Sleep = Callable[[float], Awaitable[None]]


async def sweep_forever(horde: LocalHorde, interval: float, sleep: Sleep = asyncio.sleep) -> None:
    """Run the sweep every `interval` seconds of real time (`check_waiting_prompts`)."""
    while True:
        await sleep(interval)
        try:
            horde.sweep()
        except Exception:
            logger.exception("local horde sweep failed")


def _sweep_context(horde: LocalHorde) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def sweep_task(app: web.Application) -> AsyncIterator[None]:
        interval = horde.config.sweep_interval
        task = asyncio.create_task(sweep_forever(horde, interval)) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return sweep_task


def create_app(
    config: LocalHordeConfig | None = None,
    *,
    clock: Clock | None = None,
    reference: ModelReference | None = None,
    horde: LocalHorde | None = None,
) -> web.Application:
    """Build the application; its `LocalHorde` is `app[HORDE_KEY]`."""
    horde = horde or LocalHorde(config, clock=clock, reference=reference)
    seed_requests(horde)
    app = web.Application(
        middlewares=[
            make_change_middleware(horde),
            make_fault_middleware(horde.faults, endpoint_of, horde.clock.now),
            error_middleware,
            admin_guard,
        ],
        client_max_size=64 * 1024 * 1024,
    )
    app[HORDE_KEY] = horde
    for prefix in API_PREFIXES:
        for method, path, handler, _ in API_ROUTES:
            app.router.add_route(method, prefix + path, handler)
    for method, path, handler, _ in OBJECT_ROUTES:
        app.router.add_route(method, path, handler)
    add_admin_routes(app)
    app.cleanup_ctx.append(_sweep_context(horde))
    return app
