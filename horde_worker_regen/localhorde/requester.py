"""The client side, so work can be fed in: `POST /v2/generate/async`, `GET /v2/generate/check/{id}`,
`GET|DELETE /v2/generate/status/{id}` (images come back as signed URLs, or base64 when `r2` is off).
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt
from horde_worker_regen.localhorde.errors import HordeError, invalid_api_key
from horde_worker_regen.localhorde.prompts import build_waiting_prompt
from horde_worker_regen.localhorde.schemas import ASYNC_SCHEMA, AsyncArgs
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, URL_LIFETIME_S
from horde_worker_regen.localhorde.validation import read_json_object, require_argument, validate_schema

APIKEY_HELP = "The API Key corresponding to a registered user."
# Used for the rough wait estimate only.
ASSUMED_PIXELSTEPS_PER_S = 1_000_000


def queue_request(horde: LocalHorde, user: User, body: dict[str, Any], *, safe_ip: bool = True) -> WaitingPrompt:
    """Validate an async body as the endpoint does and queue it for `user` (Python API).

    `safe_ip=False` makes the request look as if it came from a VPN / unsafe address.
    """
    validate_schema(body, ASYNC_SCHEMA)
    args = AsyncArgs.from_body(body)
    wp = build_waiting_prompt(horde.state, user, args, safe_ip=safe_ip)
    horde.state.add_request(wp)
    user.images_requested += wp.n
    return wp


async def async_handler(request: web.Request) -> web.Response:
    """`POST /v2/generate/async` → 202 `{"id", "kudos"}` (`dry_run`: 200 `{"kudos"}`)."""
    horde = horde_of(request)
    body = await read_json_object(request)
    validate_schema(body, ASYNC_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", APIKEY_HELP)
    user = horde.state.user_by_key(request.headers["apikey"])
    if user is None:
        raise invalid_api_key()
    if body.get("dry_run"):
        args = AsyncArgs.from_body({**body, "source_image": None, "source_mask": None, "extra_source_images": None})
        wp = build_waiting_prompt(horde.state, user, args)
        return web.json_response({"kudos": round(wp.kudos * wp.n, 2)})
    wp = queue_request(horde, user, body)
    return web.json_response({"id": wp.id, "kudos": round(wp.kudos * wp.n, 2)}, status=202)


def _request_or_404(horde: LocalHorde, request_id: str) -> WaitingPrompt:
    wp = horde.state.requests.get(request_id)
    if wp is None:
        raise HordeError(404, "RequestNotFound", f"Waiting Prompt with ID '{request_id}' not found.")
    return wp


def _generation_details(
    horde: LocalHorde, request: web.Request, wp: WaitingPrompt, pg: ProcessingGeneration
) -> dict[str, Any]:
    worker = horde.state.workers.get(pg.worker_id)
    key = f"{pg.id}.webp"
    if wp.r2:
        img: str | None = horde.signer.url(
            horde.public_base(request),
            "GET",
            GENERATIONS_BUCKET,
            key,
            issued=horde.clock.now(),
            lifetime=URL_LIFETIME_S,
        )
    else:
        stored = horde.state.objects.get(GENERATIONS_BUCKET, key)
        img = base64.b64encode(stored.data).decode() if stored else None
    return {
        "worker_id": pg.worker_id,
        "worker_name": worker.name if worker else None,
        "model": pg.model,
        "state": "censored" if pg.censored else "ok",
        "img": img,
        "seed": str(pg.seed),
        "id": pg.id,
        "censored": pg.censored,
        "gen_metadata": pg.gen_metadata,
    }


def status_body(horde: LocalHorde, request: web.Request, wp: WaitingPrompt, *, full: bool) -> dict[str, Any]:
    """`RequestStatusCheck` (or `RequestStatusStable` with the generations when `full`)."""
    jobs = [pg for pg in horde.state.generations_of(wp) if not pg.fake]
    finished = [pg for pg in jobs if pg.is_completed and not pg.faulted]
    processing = sum(1 for pg in jobs if not pg.is_completed and not pg.faulted)
    body: dict[str, Any] = {
        "finished": len(finished),
        "processing": processing,
        "restarted": sum(1 for pg in jobs if pg.faulted),
        "waiting": wp.n,
        "done": wp.faulted or (wp.n == 0 and processing == 0),
        "faulted": wp.faulted,
        "wait_time": int((wp.n + processing) * wp.things / ASSUMED_PIXELSTEPS_PER_S),
        "queue_position": horde.state.queue_position(wp),
        "kudos": round(wp.consumed_kudos, 2),
        "is_possible": True,
    }
    if full:
        body["generations"] = [_generation_details(horde, request, wp, pg) for pg in finished]
        body["shared"] = wp.shared
    return body


async def check_handler(request: web.Request) -> web.Response:
    """`GET /v2/generate/check/{id}`."""
    horde = horde_of(request)
    wp = _request_or_404(horde, request.match_info["request_id"])
    return web.json_response(status_body(horde, request, wp, full=False))


async def status_handler(request: web.Request) -> web.Response:
    """`GET /v2/generate/status/{id}`."""
    horde = horde_of(request)
    wp = _request_or_404(horde, request.match_info["request_id"])
    return web.json_response(status_body(horde, request, wp, full=True))


async def cancel_handler(request: web.Request) -> web.Response:
    """`DELETE /v2/generate/status/{id}`: stop handing out images; jobs in flight still count."""
    horde = horde_of(request)
    wp = _request_or_404(horde, request.match_info["request_id"])
    wp.n = 0
    return web.json_response(status_body(horde, request, wp, full=True))
