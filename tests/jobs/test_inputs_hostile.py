"""Hostile or broken input images: each one fails only its own input, with a specific reason.

Local aiohttp servers play the part of slow, endless and redirecting sources. They listen on loopback,
so the fetcher used for them allows private addresses, as `allow_private_source_urls: true` would;
the tests of the guard itself use the default, which refuses them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from yarl import URL

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.url_guard import UnsafeUrl, UrlGuard
from horde_worker_regen.jobs.spec import SourceRefs
from horde_worker_regen.pipeline.inputs import MAX_INPUT_PIXELS, InputFetcher, InputRejected, check_image
from tests.jobs.conftest import RecordingSleep, webp_bytes

SOURCE = webp_bytes(64, 64, (20, 30, 200))
DEADLINE = 10_000.0


def png_claiming(width: int, height: int) -> bytes:
    """A small real PNG whose header claims `width`x`height` (CRC fixed): a decompression bomb's shape."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@asynccontextmanager
async def serve(routes: Callable[[web.Application], object]) -> AsyncIterator[str]:
    """A local HTTP server; yields its base URL."""
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _slow(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(600):  # a byte a second at best: only a total timeout ends this
        await response.write(b"\0")
        await asyncio.sleep(1)  # the fault itself (a source trickling its bytes), not a wait for anything
    return response


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # no Content-Length: the size is only known by reading
    await response.prepare(request)
    while True:
        await response.write(b"\x89PNG" + b"\0" * 65532)


def _source_routes(app: web.Application) -> None:
    app.router.add_get("/slow", _slow)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/image", _image_response)
    app.router.add_get("/loop", _redirect_to("/loop"))


async def _image_response(request: web.Request) -> web.Response:
    return web.Response(body=SOURCE, content_type="image/webp")


def _redirect_to(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return redirect


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _fetcher(session: aiohttp.ClientSession, guard: UrlGuard | None = None, **fields: object) -> InputFetcher:
    client = HordeClient(session, "http://127.0.0.1:9/api", "k" * 22)
    guard = guard or UrlGuard(allow_private=True)
    return InputFetcher(client, clock=lambda: 1000.0, sleep=RecordingSleep(), guard=guard, **fields)  # type: ignore[arg-type]


async def test_a_slow_body_is_cut_by_the_total_timeout(session: aiohttp.ClientSession) -> None:
    async with serve(_source_routes) as base:
        started = time.monotonic()
        inputs, metadata = await _fetcher(session, timeout_s=0.5).fetch(SourceRefs(f"{base}/slow"), DEADLINE)
        assert time.monotonic() - started < 5  # three attempts of 0.5 s, no more
    assert inputs.source_image is None
    assert metadata == [{"type": "source_image", "value": "download_failed"}]


async def test_an_endless_body_is_cut_at_the_size_cap(session: aiohttp.ClientSession) -> None:
    async with serve(_source_routes) as base:
        with pytest.raises(HordeRequestError, match="413"):
            await _fetcher(session, max_bytes=1 << 20).fetch_one(f"{base}/endless", DEADLINE, attempts=3)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/", "data:image/png;a"])
async def test_only_http_and_https_are_fetched(session: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(UnsafeUrl, match="scheme"):
        await _fetcher(session).fetch_one(url, DEADLINE, attempts=3)
    inputs, metadata = await _fetcher(session).fetch(SourceRefs(url), DEADLINE)
    assert inputs.source_image is None and metadata == [{"type": "source_image", "value": "download_failed"}]


async def test_redirects_to_private_addresses_are_refused_unless_the_operator_allows_them(
    session: aiohttp.ClientSession,
) -> None:
    async with (
        serve(_source_routes) as private_base,
        serve(lambda app: app.router.add_get("/go", _redirect_to(f"{private_base}/image"))) as horde_base,
    ):
        # The horde's own origin is trusted (local horde, presigned URLs on it); the hop it redirects to is not.
        strict = UrlGuard.for_horde(f"{horde_base}/api", allow_private=False)
        with pytest.raises(UnsafeUrl, match=r"non-public address.*allow_private_source_urls"):
            await _fetcher(session, strict).fetch_one(f"{horde_base}/go", DEADLINE, attempts=3)
        lenient = UrlGuard.for_horde(f"{horde_base}/api", allow_private=True)
        assert await _fetcher(session, lenient).fetch_one(f"{horde_base}/go", DEADLINE, attempts=3) == SOURCE


def _guard_of(**settings: object) -> UrlGuard:
    """The guard a worker builds from its configuration (`worker/serving_pipeline.py`)."""
    data = BridgeData.model_validate({"horde_url": "http://127.0.0.1:7001/api/", **settings})
    return UrlGuard.for_horde(data.horde_url, data.allow_private_source_urls)


@pytest.mark.parametrize("allow_unsafe_ip", [True, False])
async def test_allow_unsafe_ip_never_opens_the_worker_s_own_loopback(
    session: aiohttp.ClientSession, allow_unsafe_ip: bool
) -> None:
    async with serve(_source_routes) as other_loopback_server:
        url = f"{other_loopback_server}/image"
        with pytest.raises(UnsafeUrl, match="non-public address"):
            await _fetcher(session, _guard_of(allow_unsafe_ip=allow_unsafe_ip)).fetch_one(url, DEADLINE, attempts=3)
        opened = _guard_of(allow_unsafe_ip=allow_unsafe_ip, allow_private_source_urls=True)
        assert await _fetcher(session, opened).fetch_one(url, DEADLINE, attempts=3) == SOURCE


async def test_the_horde_s_own_origin_is_fetched_with_the_default_settings(session: aiohttp.ClientSession) -> None:
    async with serve(_source_routes) as horde_base:
        guard = UrlGuard.for_horde(f"{horde_base}/api/", allow_private=BridgeData().allow_private_source_urls)
        assert await _fetcher(session, guard).fetch_one(f"{horde_base}/image", DEADLINE, attempts=3) == SOURCE


@pytest.mark.parametrize(
    ("addresses", "allowed"),
    [
        (["93.184.216.34"], True),
        (["10.0.0.7"], False),
        (["192.168.1.5"], False),
        (["169.254.169.254"], False),
        (["::1"], False),
        (["fd00::1"], False),
        (["93.184.216.34", "127.0.0.1"], False),
        ([], False),
    ],
)
async def test_every_resolved_address_must_be_public(addresses: list[str], allowed: bool) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return addresses

    guard = UrlGuard(resolver=resolver)  # the default: private addresses refused
    if allowed:
        await guard.check(URL("https://images.example/a.webp"))
    else:
        with pytest.raises(UnsafeUrl):
            await guard.check(URL("https://images.example/a.webp"))


async def test_a_redirect_loop_ends_without_retries(session: aiohttp.ClientSession) -> None:
    async with serve(_source_routes) as base:
        with pytest.raises(HordeRequestError, match="redirects"):
            await _fetcher(session).fetch_one(f"{base}/loop", DEADLINE, attempts=3)


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = png_claiming(100_000, 100_000)
    started = time.monotonic()
    with pytest.raises(InputRejected, match="decompression bomb"):
        check_image(bomb)
    assert time.monotonic() - started < 1
    with pytest.raises(InputRejected, match=f"at most {MAX_INPUT_PIXELS}"):
        check_image(png_claiming(5000, 5000))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "does not decode"),
        (SOURCE[: len(SOURCE) // 2], "does not decode"),
        (b"<html>not an image</html>", "not an image"),
        (png_claiming(0, 64), "does not decode|0x64"),
    ],
)
def test_what_is_not_a_whole_image_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InputRejected, match=reason):
        check_image(data)


async def test_an_unusable_source_is_parse_failed_and_the_job_falls_back(session: aiohttp.ClientSession) -> None:
    bomb = base64.b64encode(png_claiming(100_000, 100_000)).decode()
    refs = SourceRefs(source_image=bomb, source_mask=base64.b64encode(SOURCE).decode())
    inputs, metadata = await _fetcher(session).fetch(refs, DEADLINE)
    assert inputs.source_image is None and inputs.source_mask is None
    assert metadata == [{"type": "source_image", "value": "parse_failed"}]
