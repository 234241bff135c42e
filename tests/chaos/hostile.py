"""Hostile inputs: HTTP routes serving what no source image should be, and a pop-response tamperer
that turns a job's payload into something outside the API contract.

`add_hostile_routes` mounts the routes on any aiohttp app (the chaos horde's own, so they share its
origin, or a separate server): images of any size, text, a truncated PNG, a decompression bomb, a
body that trickles a byte at a time, a body that never ends, and redirects. Every hit is counted and
announced.
`PayloadTamper` rewrites the pop answer of a job whose prompt carries a marker (`<chaos:...>`).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import io
import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOMB_SIDE = 16_384  # 268 M pixels of zeros: about 1.2 MB compressed, 268 MB once decoded
TRICKLE_INTERVAL_S = 0.5
ENDLESS_CHUNK = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Tamper = Callable[[dict[str, Any]], None]


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG of that size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def decompression_bomb() -> bytes:
    """A well-formed greyscale PNG of BOMB_SIDE² pixels, all zero: tiny on the wire, huge decoded."""
    compressor = zlib.compressobj(1)  # fast; zeros still shrink about 230-fold
    row = b"\x00" * (BOMB_SIDE + 1)  # filter byte + one byte per pixel
    rows_per_piece = 1024
    data = b"".join(compressor.compress(row * rows_per_piece) for _ in range(BOMB_SIDE // rows_per_piece))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def add_hostile_routes(
    app: web.Application,
    hits: collections.Counter[str],
    prefix: str = "/chaos",
    on_hit: Callable[[], None] = lambda: None,
) -> None:
    """Mount the hostile routes under `prefix`; `hits` counts requests per route name, and `on_hit` is told of
    each as it arrives (a trickling answer may never end)."""

    def counted(name: str, handler: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            hits[name] += 1
            on_hit()
            return await handler(request)

        return wrapper

    async def image(request: web.Request) -> web.Response:
        width, height = int(request.match_info["width"]), int(request.match_info["height"])
        return web.Response(body=png_bytes(width, height), content_type="image/png")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Not an image at all</body></html>", content_type="text/html")

    async def truncated(request: web.Request) -> web.Response:
        return web.Response(body=png_bytes(512, 512)[:120], content_type="image/png")

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=decompression_bomb(), content_type="image/png")

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        try:
            await response.write(PNG_SIGNATURE)
            while True:
                await asyncio.sleep(TRICKLE_INTERVAL_S)  # the fault itself: one byte per interval, forever
                await response.write(b"\x00")
        except (ConnectionError, RuntimeError):
            return response  # the client gave up

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        try:
            await response.write(PNG_SIGNATURE)
            while True:
                await response.write(b"\x00" * ENDLESS_CHUNK)
        except (ConnectionError, RuntimeError):
            return response  # the client gave up

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    routes: dict[str, tuple[str, Handler]] = {
        "image": ("/image/{width:\\d+}x{height:\\d+}.png", image),
        "text": ("/not-an-image", text),
        "truncated": ("/truncated.png", truncated),
        "bomb": ("/bomb.png", bomb),
        "slow": ("/slow.png", trickle),
        "endless": ("/endless.png", endless),
        "redirect": ("/redirect", redirect),
        "secret": ("/secret.png", image),
    }
    for name, (path, handler) in routes.items():
        route_path = path.replace("/secret.png", "/secret/{width:\\d+}x{height:\\d+}.png")
        app.router.add_get(prefix + route_path, counted(name, handler))


class PayloadTamper:
    """Rewrites the pop answer of any job whose prompt holds a registered marker (an innermost middleware)."""

    def __init__(self) -> None:
        self.rules: dict[str, Tamper] = {}
        self.fired: collections.Counter[str] = collections.Counter()

    def add(self, marker: str, tamper: Tamper) -> str:
        """Register a marker; returns it, to be put in a request's prompt."""
        self.rules[marker] = tamper
        return marker

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply every marker found in a popped job's prompt to its answer."""
        response = await handler(request)
        if not (request.path.endswith("/generate/pop") and isinstance(response, web.Response)):
            return response
        if not isinstance(response.body, bytes):
            return response
        body = json.loads(response.body)
        payload = body.get("payload")  # not an object when a `mangle` fault made it something else
        prompt = str(payload.get("prompt", "")) if isinstance(payload, dict) else ""
        markers = [marker for marker in self.rules if marker in prompt]
        if not body.get("ids") or not markers:
            return response
        for marker in markers:
            self.rules[marker](body)
            self.fired[marker] += 1
        return web.json_response(body, status=response.status)
