"""The dashboard's aiohttp application: the page, its files, /status.json, /history.json, /metrics, /healthz,
pause/resume.

Every route reads the live worker through one snapshot function (/history.json: the ring of samples
taken of it); the page is static HTML and small scripts that poll /status.json every second and
/history.json every few seconds, all served from this package (no CDN, no build).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from horde_worker_regen.dashboard.auth import token_middleware
from horde_worker_regen.dashboard.metrics import CONTENT_TYPE, metrics_registry, render
from horde_worker_regen.dashboard.snapshot import DashboardSources, Snapshot, build_snapshot

STATIC = Path(__file__).parent / "static"
_NO_STORE = {"Cache-Control": "no-store"}


def dashboard_app(sources: DashboardSources, token: str | None) -> web.Application:
    """The application for one running worker (`token`: the dashboard_token, or None on loopback)."""

    def snapshot() -> Snapshot:
        return build_snapshot(sources)

    registry = metrics_registry(snapshot)

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=_NO_STORE)

    async def status_json(request: web.Request) -> web.StreamResponse:
        return web.json_response(snapshot(), headers=_NO_STORE)

    async def history_json(request: web.Request) -> web.StreamResponse:
        return web.json_response(sources.history.as_json(_since(request)), headers=_NO_STORE)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE} | _NO_STORE)

    async def healthz(request: web.Request) -> web.StreamResponse:
        # Answered by the worker's own event loop: a reply at all means the loop runs.
        stopping = sources.stopping()
        return web.json_response({"status": "stopping" if stopping else "ok"}, status=503 if stopping else 200)

    def popping_switch(action: Callable[[], None]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def switch(request: web.Request) -> web.StreamResponse:
            action()
            return web.json_response({"paused": sources.popper.paused})

        return switch

    app = web.Application(middlewares=[token_middleware(token)])
    app.router.add_get("/", index)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/history.json", history_json)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/pause", popping_switch(sources.popper.pause))
    app.router.add_post("/resume", popping_switch(sources.popper.resume))
    app.router.add_static("/static/", STATIC)
    return app


def _since(request: web.Request) -> float | None:
    """`?since=T` (unix seconds): only newer samples; a value that is not a finite number is a 400."""
    text = request.query.get("since")
    if text is None:
        return None
    try:
        since = float(text)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise web.HTTPBadRequest(text="since must be a time in unix seconds")
    return since
