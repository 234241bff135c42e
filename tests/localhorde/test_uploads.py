"""The R2 stand-in: uploads to issued URLs, their expiry, and source images served by URL."""

from __future__ import annotations

import base64
from typing import Any

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import StoredImage, User
from horde_worker_regen.localhorde.payload import SourceLinks
from horde_worker_regen.localhorde.state import StoredObject
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET
from tests.localhorde.support import WEBP_B64, WEBP_BYTES, Client, path_of, pop, queue, submit


async def popped(client: Client, horde: LocalHorde, owner: User, requester: User, **request: Any) -> dict[str, Any]:
    queue(horde, requester, **request)
    _, body = await pop(client, owner, amount=4)
    return body  # type: ignore[no-any-return]


async def test_put_stores_the_bytes_and_the_requester_can_fetch_them(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await popped(client, horde, owner, requester)
    resp = await client.put(path_of(job["r2_uploads"][0]), data=WEBP_BYTES)
    assert resp.status == 200 and resp.headers["ETag"].startswith('"')
    await submit(client, owner, job["ids"][0])
    status = await (await client.get(f"/api/v2/generate/status/{horde.state.generations[job['ids'][0]].wp_id}")).json()
    image = await client.get(path_of(status["generations"][0]["img"]))
    assert image.status == 200 and await image.read() == WEBP_BYTES
    assert image.headers["Content-Type"] == "image/webp"


async def test_each_id_has_its_own_url(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await popped(client, horde, owner, requester, params={"n": 2})
    for index, url in enumerate(job["r2_uploads"]):
        assert (await client.put(path_of(url), data=bytes([index]) * 10)).status == 200
    for index, job_id in enumerate(job["ids"]):
        stored = horde.state.objects.get("stable-horde", f"{job_id}.webp")
        assert stored is not None and stored.data == bytes([index]) * 10


async def test_upload_url_expires_1800s_after_the_pop(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await popped(client, horde, owner, requester, params={"n": 2})
    clock.advance(1799)
    assert (await client.put(path_of(job["r2_uploads"][0]), data=WEBP_BYTES)).status == 200
    clock.advance(2)
    resp = await client.put(path_of(job["r2_uploads"][1]), data=WEBP_BYTES)
    assert resp.status == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in await resp.text()


async def test_tampered_or_cross_method_urls_are_refused(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await popped(client, horde, owner, requester)
    url = path_of(job["r2_uploads"][0])
    tampered = url.replace("X-Amz-Expires=1800", "X-Amz-Expires=999999")
    resp = await client.put(tampered, data=WEBP_BYTES)
    assert resp.status == 403 and "SignatureDoesNotMatch" in await resp.text()
    resp = await client.get(url)  # a PUT signature does not allow reading
    assert resp.status == 403


async def test_missing_object_is_no_such_key(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await popped(client, horde, owner, requester)
    url = horde.signer.url("", "GET", "stable-horde", f"{job['ids'][0]}.webp", issued=horde.clock.now(), lifetime=1800)
    resp = await client.get(url)
    assert resp.status == 404 and "NoSuchKey" in await resp.text()


async def test_source_images_are_served_until_1800s_after_request_creation(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, source_image=WEBP_B64, source_processing="inpainting", source_mask=WEBP_B64)
    clock.advance(1000)
    _, job = await pop(client, owner)
    for field in ("source_image", "source_mask"):
        resp = await client.get(path_of(job[field]))
        assert resp.status == 200 and await resp.read() == WEBP_BYTES
    clock.advance(801)  # 1801 s after the request, only 801 s after the pop
    resp = await client.get(path_of(job["source_image"]))
    assert resp.status == 403 and "Request has expired" in await resp.text()


async def test_client_urls_are_passed_through(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await popped(client, horde, owner, requester, source_image="https://example.invalid/src.webp")
    assert job["source_image"] == "https://example.invalid/src.webp"


async def test_bad_base64_source_is_image_validation_failed(client: Client, requester: User) -> None:
    resp = await client.post(
        "/api/v2/generate/async",
        json={"prompt": "x", "source_image": "%%%not base64"},
        headers={"apikey": requester.api_key},
    )
    assert resp.status == 400 and (await resp.json())["rc"] == "ImageValidationFailed"


def test_bridges_without_r2_source_get_base64(horde: LocalHorde) -> None:
    horde.state.objects.put(SOURCES_BUCKET, "k.webp", StoredObject(WEBP_BYTES, "image/webp", 0))
    links = SourceLinks("http://h", horde.signer, horde.state.objects, inline=True)
    assert links.link(StoredImage(key="k.webp"), 0) == base64.b64encode(WEBP_BYTES).decode()
    assert links.link(StoredImage(url="https://x/y.webp"), 0) == "https://x/y.webp"
    assert links.link(None, 0) is None


async def test_public_url_is_used_for_issued_urls(aiohttp_client: Any, clock: FakeClock) -> None:
    horde = LocalHorde(LocalHordeConfig(public_url="https://horde.example/", sweep_interval=0), clock=clock)
    client = await aiohttp_client(create_app(horde=horde))
    owner = horde.add_user("o", trusted=True)
    queue(horde, owner)
    _, job = await pop(client, owner)
    assert job["r2_upload"].startswith("https://horde.example/r2/stable-horde/")
