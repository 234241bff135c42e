"""The alchemy requester side (`/v2/interrogate/async`, status, cancel), the admin API, faults and helpers."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.alchemy_forms import FORM_NAMES, MAX_SOURCE_BYTES
from horde_worker_regen.localhorde.alchemy_requests import queue_interrogation
from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.errors import HordeError
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.localhorde.alchemy_support import (
    ALCHEMIST,
    ipop,
    ipop_body,
    isubmit,
    png_b64,
    png_bytes,
    queue_alchemy,
)
from tests.localhorde.support import WEBP_BYTES, Client, assert_error, path_of

VALIDATION = "Input payload validation failed"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds no pixels: enough for the horde to count tiles."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


async def interrogate(client: Client, user: User | str, body: dict[str, Any]) -> tuple[int, Any]:
    key = user if isinstance(user, str) else user.api_key
    resp = await client.post("/api/v2/interrogate/async", json=body, headers={"apikey": key})
    return resp.status, await resp.json()


async def status_of(client: Client, request_id: str) -> Any:
    return await (await client.get(f"/api/v2/interrogate/status/{request_id}")).json()


async def test_async_queues_the_forms_and_status_follows_them(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    body = {"forms": [{"name": "caption"}, {"name": "nsfw"}, {"name": "caption"}], "source_image": png_b64()}
    status, answer = await interrogate(client, requester, body)
    assert status == 202 and set(answer) == {"id"}
    request_id = answer["id"]
    assert await status_of(client, request_id) == {
        "state": "waiting",
        "forms": [
            {"form": "caption", "state": "waiting", "result": {}},
            {"form": "nsfw", "state": "waiting", "result": {}},
        ],  # a form named twice is queued once
    }
    _, popped = await ipop(client, owner, forms=["caption"])
    assert (await status_of(client, request_id))["state"] == "processing"
    await isubmit(client, owner, popped["forms"][0]["id"], {"caption": "a red square"})
    after = await status_of(client, request_id)
    assert after["forms"][0] == {"form": "caption", "state": "done", "result": {"caption": "a red square"}}
    assert after["state"] == "waiting"
    _, popped = await ipop(client, owner, forms=["nsfw"])
    await isubmit(client, owner, popped["forms"][0]["id"], {"nsfw": False})
    assert (await status_of(client, request_id))["state"] == "done"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"forms": [{"name": "post-process"}], "source_image": "x"},
            {"forms.0.name": f"'post-process' is not one of {list(FORM_NAMES)!r}"},
        ),
        ({"forms": [{}], "source_image": "x"}, {"forms.0.name": "'name' is a required property"}),
        (
            {"forms": [{"name": "caption", "payload": "x"}], "source_image": "x"},
            {"forms.0.payload": "'x' is not of type 'object'"},
        ),
        ({"forms": [{"name": "caption"}]}, {"source_image": "Missing required parameter in the JSON body"}),
        ({"source_image": 5}, {"source_image": "5 is not of type 'string'"}),
        ({"source_image": "x", "slow_workers": "no"}, {"slow_workers": "'no' is not of type 'boolean'"}),
    ],
)
async def test_async_validation(
    client: Client, horde: LocalHorde, requester: User, body: dict[str, Any], errors: dict[str, str]
) -> None:
    assert await interrogate(client, requester, body) == (400, {"errors": errors, "message": VALIDATION})
    assert horde.state.alchemy.interrogations == {}


@pytest.mark.parametrize(
    ("source", "rc", "message"),
    [
        ("not base64!", "ImageValidationFailed", None),
        (base64.b64encode(b"not an image").decode(), "ImageValidationFailed", None),
        (
            base64.b64encode(png_header(4096, 4097)).decode(),  # 8 x 9 = 72 tiles: fine
            None,
            None,
        ),
        (
            base64.b64encode(png_header(8192, 4097)).decode(),  # 16 x 9 = 144 tiles: fine
            None,
            None,
        ),
        (
            base64.b64encode(png_header(8192, 8160)).decode(),  # 16 x 16 = 256 tiles
            "SourceImageResolutionExceeded",
            "Image validation failed. Image is too large (256 tiles) and would cause horde alchemists to run out "
            "of VRAM trying to process it.",
        ),
    ],
)
async def test_async_source_images(
    *, client: Client, horde: LocalHorde, requester: User, source: str, rc: str | None, message: str | None
) -> None:
    got = await interrogate(client, requester, {"forms": [{"name": "caption"}], "source_image": source})
    if rc is None:
        assert got[0] == 202
    else:
        assert_error(got, 400, rc, message)
        assert horde.state.objects.buckets.get("stable-horde-source-images", {}) == {}


async def test_async_needs_a_known_key_and_an_https_webhook(client: Client, requester: User) -> None:
    body = {"forms": [{"name": "caption"}], "source_image": png_b64()}
    assert_error(await interrogate(client, "not a key", body), 401, "InvalidAPIKey")
    webhook = {**body, "webhook": "http://example.invalid/hook"}
    assert_error(await interrogate(client, requester, webhook), 400, "BadRequest")


async def test_a_requester_may_have_300_forms_waiting(horde: LocalHorde, requester: User) -> None:
    for _ in range(100):
        queue_alchemy(horde, requester, ["caption", "nsfw", "interrogation"])
    with pytest.raises(HordeError) as refused:
        queue_alchemy(horde, requester, ["caption"])
    assert (refused.value.status, refused.value.rc) == (429, "TooManyPrompts")


async def test_a_request_with_no_forms_is_faulted_as_the_server_shows_it(client: Client, requester: User) -> None:
    _, answer = await interrogate(client, requester, {"source_image": png_b64()})
    assert await status_of(client, answer["id"]) == {"state": "faulted", "forms": []}


async def test_cancel_keeps_results_in_and_cancels_the_rest(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    i = queue_alchemy(horde, requester, ["caption", "nsfw", "interrogation"])
    _, popped = await ipop(client, owner, forms=["caption", "nsfw"], amount=2)
    await isubmit(client, owner, popped["forms"][0]["id"], {"caption": "kept"})
    resp = await client.delete(f"/api/v2/interrogate/status/{i.id}")
    assert await resp.json() == {
        "state": "partial",
        "forms": [
            {"form": "caption", "state": "done", "result": {"caption": "kept"}},
            {"form": "nsfw", "state": "cancelled", "result": {}},
            {"form": "interrogation", "state": "cancelled", "result": {}},
        ],
    }
    assert (await ipop(client, owner))[1]["forms"] is None
    missing = await client.delete("/api/v2/interrogate/status/nope")
    assert (missing.status, (await missing.json())["rc"]) == (404, "RequestNotFound")


async def test_find_user_counts_forms_delivered_and_paid_for(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester)
    _, popped = await ipop(client, owner)
    await isubmit(client, owner, popped["forms"][0]["id"])
    owner_records = await (await client.get("/api/v2/find_user", headers={"apikey": owner.api_key})).json()
    requester_records = await (await client.get("/api/v2/find_user", headers={"apikey": requester.api_key})).json()
    assert owner_records["records"]["fulfillment"]["interrogation"] == 1
    assert requester_records["records"]["request"]["interrogation"] == 1


@pytest.fixture
async def image_host(aiohttp_server: ServerFactory) -> TestServer:
    """A requester's own web server, serving a small PNG and a file too big to interrogate."""

    async def small(_: web.Request) -> web.Response:
        return web.Response(body=png_bytes(1000, 600), content_type="image/png")

    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=png_header(64, 64) + b"\0" * MAX_SOURCE_BYTES, content_type="image/png")

    app = web.Application()
    app.router.add_get("/small.png", small)
    app.router.add_get("/huge.png", huge)
    return await aiohttp_server(app)


async def test_a_url_source_is_measured_then_passed_through(
    client: Client, horde: LocalHorde, owner: User, requester: User, image_host: TestServer
) -> None:
    url = str(image_host.make_url("/small.png"))
    status, answer = await interrogate(client, requester, {"forms": [{"name": "GFPGAN"}], "source_image": url})
    assert status == 202
    interrogation = horde.state.alchemy.interrogations[answer["id"]]
    assert (interrogation.width, interrogation.height, interrogation.image_tiles) == (1000, 600, 4)
    assert horde.state.alchemy.forms_of(interrogation)[0].kudos == 12
    _, popped = await ipop(client, owner, forms=["GFPGAN"])
    assert popped["forms"][0]["source_image"] == url


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/huge.png", "Image validation failed. Provided image cannot be larger than 5Mb"),
        ("/missing.png", None),
    ],
)
async def test_a_url_source_that_cannot_be_read_is_refused(
    *, client: Client, horde: LocalHorde, requester: User, image_host: TestServer, path: str, message: str | None
) -> None:
    body = {"forms": [{"name": "caption"}], "source_image": str(image_host.make_url(path))}
    assert_error(await interrogate(client, requester, body), 400, "ImageValidationFailed", message)
    assert horde.state.alchemy.interrogations == {}


async def test_the_python_api_needs_the_size_of_a_url_source(horde: LocalHorde, requester: User) -> None:
    body = {"forms": [{"name": "caption"}], "source_image": "https://example.invalid/a.png"}
    with pytest.raises(ValueError, match="image size"):
        queue_interrogation(horde, requester, body)


async def test_admin_queues_interrogations_and_shows_alchemy_in_the_state(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    body = {"forms": [{"name": "caption"}, {"name": "RealESRGAN_x4plus"}], "source_image": png_b64(700, 512)}
    resp = await client.post("/_admin/interrogations", json={"username": "requester", "body": body})
    assert resp.status == 201
    request_id = (await resp.json())["id"]
    url_body = {"forms": [{"name": "caption"}], "source_image": "https://example.invalid/a.png"}
    refused = await client.post("/_admin/interrogations", json={"username": "requester", "body": url_body})
    assert refused.status == 400
    sized = {"username": "requester", "body": url_body, "image_size": [512, 512]}
    assert (await client.post("/_admin/interrogations", json=sized)).status == 201
    _, popped = await ipop(client, owner, forms=["caption"])
    await isubmit(client, owner, popped["forms"][0]["id"], {"caption": "ok"})
    state = await (await client.get("/_admin/state")).json()
    alchemist = next(w for w in state["workers"] if w["name"] == ALCHEMIST)
    assert alchemist["type"] == "interrogation" and alchemist["forms_done"] == {"caption": 1}
    assert alchemist["kudos"] == 1 and alchemist["max_tiles"] == 16 and alchemist["fulfilments"] == 1
    listed = next(i for i in state["interrogations"] if i["id"] == request_id)
    assert listed["tiles"] == 2
    assert [(f["name"], f["state"], f["kudos"]) for f in listed["forms"]] == [
        ("caption", "done", 1.0),
        ("RealESRGAN_x4plus", "waiting", 6.0),
    ]
    swept = await (await client.post("/_admin/sweep")).json()
    assert swept["aborted_forms"] == [] and swept["expired_interrogations"] == []


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [
        ("interrogate_pop", "pop"),
        ("interrogate_submit", "submit"),
        ("interrogate_async", "async"),
        ("interrogate_status", "status"),
    ],
)
async def test_error_faults_on_the_alchemy_endpoints(
    *, client: Client, horde: LocalHorde, owner: User, requester: User, endpoint: str, call: str
) -> None:
    i = queue_alchemy(horde, requester)
    horde.faults.add(endpoint=endpoint, kind="error", status=503, times=1)
    calls = {
        "pop": lambda: client.post("/api/v2/interrogate/pop", json=ipop_body(), headers={"apikey": owner.api_key}),
        "submit": lambda: client.post(
            "/api/v2/interrogate/submit", json={"id": i.form_ids[0], "result": {}}, headers={"apikey": owner.api_key}
        ),
        "async": lambda: client.post(
            "/api/v2/interrogate/async", json={"source_image": png_b64()}, headers={"apikey": requester.api_key}
        ),
        "status": lambda: client.get(f"/api/v2/interrogate/status/{i.id}"),
    }
    assert (await calls[call]()).status == 503
    assert (await calls[call]()).status != 503  # fired once
    assert horde.faults.rules() == []


async def test_a_dropped_submit_answer_was_applied(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester)
    _, popped = await ipop(client, owner)
    form_id = popped["forms"][0]["id"]
    horde.faults.add(endpoint="interrogate_submit", kind="drop", times=1)
    with pytest.raises(aiohttp.ClientError):
        await isubmit(client, owner, form_id)
    assert horde.state.alchemy.forms[form_id].state is FormState.DONE
    lost = horde.faults.lost_responses[0]
    assert (lost.endpoint, lost.status) == ("interrogate_submit", 200) and form_id.encode() in lost.request


async def test_running_horde_helpers_drive_alchemy_end_to_end(live_horde: RunningLocalHorde) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    requester = live_horde.add_user("requester", kudos=100)
    interrogation = live_horde.queue_interrogation(
        requester, ["caption", {"name": "strip_background", "payload": {"alpha": 1}}], png_bytes(300, 200)
    )
    assert live_horde.interrogation_state(interrogation.id) == "waiting"
    headers = {"apikey": owner.api_key}
    async with aiohttp.ClientSession() as session:
        pop_url = f"{live_horde.api_url}/v2/interrogate/pop"
        async with session.post(pop_url, json=ipop_body(amount=2), headers=headers) as resp:
            forms = (await resp.json())["forms"]
        caption, strip = forms
        assert strip["payload"] == {"alpha": "1"}
        async with session.put(strip["r2_upload"], data=WEBP_BYTES) as resp:
            assert resp.status == 200
        for entry, result in ((caption, {"caption": "a red square"}), (strip, {"strip_background": "R2"})):
            body = {"id": entry["id"], "result": result}
            async with session.post(f"{live_horde.api_url}/v2/interrogate/submit", json=body, headers=headers) as resp:
                assert resp.status == 200
    await live_horde.wait_for_interrogation(interrogation.id, "done", timeout=5)
    results = live_horde.form_results(interrogation.id)
    assert results["caption"] == {"caption": "a red square"}
    strip_result = results["strip_background"]
    assert strip_result is not None and path_of(strip_result["strip_background"]).startswith("/r2/stable-horde/")
    assert [f.state for f in live_horde.forms_of(interrogation.id)] == [FormState.DONE, FormState.DONE]
    assert requester.kudos == pytest.approx(100 - (1 + 2) - (3 + 2))


def test_the_configuration_can_seed_alchemy() -> None:
    seed = {"forms": [{"name": "caption"}], "source_image": "https://example.invalid/cat.png"}
    config = LocalHordeConfig.model_validate(
        {
            "sweep_interval": 0,
            "users": [{"username": "alice", "kudos": 10}],
            "interrogations": [{"username": "alice", "body": seed, "image_size": [1024, 512], "copies": 2}],
        }
    )
    horde = LocalHorde(config)
    create_app(horde=horde)
    requests = list(horde.state.alchemy.interrogations.values())
    assert [(i.source.url, i.image_tiles) for i in requests] == [("https://example.invalid/cat.png", 2)] * 2
    stranger = LocalHordeConfig.model_validate({"interrogations": [{"username": "bob", "body": seed}]})
    with pytest.raises(ValueError, match="unknown user 'bob'"):
        create_app(horde=LocalHorde(stranger))
