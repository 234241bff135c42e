"""A local HTTP file server for download tests: Range support, a connection cut, request records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class ServedFile:
    """What the server holds and how it misbehaves."""

    body: bytes
    cut_after: int | None = None  # first response: close the connection after this many body bytes
    honour_range: bool = True
    status: int = 200
    gate: asyncio.Event | None = None  # when set, the body is sent only once the test opens the gate
    requests: list[dict[str, str]] = field(default_factory=list)


async def _serve(request: web.Request, served: ServedFile) -> web.StreamResponse:
    served.requests.append(dict(request.headers))
    if served.gate is not None:
        await served.gate.wait()
    if served.status != 200:
        return web.Response(status=served.status, text="no")
    start = 0
    range_header = request.headers.get("Range", "")
    if served.honour_range and range_header.startswith("bytes="):
        start = int(range_header[6:].rstrip("-"))
    if start >= len(served.body) and start:
        return web.Response(status=416)
    response = web.StreamResponse(status=206 if start else 200)
    response.content_length = len(served.body) - start
    if start:
        response.headers["Content-Range"] = f"bytes {start}-{len(served.body) - 1}/{len(served.body)}"
    await response.prepare(request)
    body = served.body[start:]
    if served.cut_after is not None:
        cut, served.cut_after = served.cut_after, None
        await response.write(body[:cut])
        assert request.transport is not None
        request.transport.close()  # the client sees the body end short of Content-Length
        return response
    await response.write(body)
    await response.write_eof()
    return response


def _handler(served: ServedFile) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _serve(request, served)

    return handle


@asynccontextmanager
async def file_server(files: dict[str, ServedFile]) -> AsyncIterator[str]:
    """Serve `files` by path; yields the base URL (no trailing slash)."""
    app = web.Application()
    for path, served in files.items():
        app.router.add_get(path, _handler(served))
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
