"""The requester side: async, check, status (images as URLs or base64), cancel, request checks."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from tests.localhorde.support import WEBP_B64, WEBP_BYTES, Client, assert_error, path_of, pop, submit


async def post_async(client: Client, user: User | str, body: dict[str, Any]) -> tuple[int, Any]:
    key = user if isinstance(user, str) else user.api_key
    resp = await client.post("/api/v2/generate/async", json=body, headers={"apikey": key})
    return resp.status, await resp.json()


async def test_async_is_202_with_id_and_kudos(client: Client, horde: LocalHorde, requester: User) -> None:
    status, body = await post_async(client, requester, {"prompt": "a fox", "params": {"n": 2}})
    assert status == 202
    assert set(body) == {"id", "kudos"} and body["kudos"] == 13.0
    wp = horde.state.requests[body["id"]]
    assert wp.n == 2 and wp.nsfw is True  # the parser's default
    assert wp.params["cfg_scale"] == 5.0 and wp.params["karras"] is True and wp.params["sampler_name"] == "k_euler_a"


async def test_async_needs_a_known_key_but_allows_anonymous(client: Client) -> None:
    status, body = await post_async(client, "nope", {"prompt": "x"})
    assert_error((status, body), 401, "InvalidAPIKey")
    status, _ = await post_async(client, "0000000000", {"prompt": "x"})
    assert status == 202


async def test_dry_run_prices_without_queueing(client: Client, horde: LocalHorde, requester: User) -> None:
    status, body = await post_async(
        client, requester, {"prompt": "x", "dry_run": True, "params": {"width": 1024, "height": 1024}}
    )
    assert (status, body) == (200, {"kudos": 36.04})
    assert horde.state.requests == {}


@pytest.mark.parametrize(
    ("body", "rc"),
    [
        ({"params": {"loras": [{"name": str(i)} for i in range(6)]}}, "TooManyLoras"),
        ({"params": {"tis": [{"name": str(i)} for i in range(21)]}}, "TooManyTIs"),
        ({"params": {"post_processing": ["RealESRGAN_x4plus", "RealESRGAN_x2plus"]}}, "TooManyUpscalers"),
        ({"source_mask": WEBP_B64}, "SourceMaskUnnecessary"),
        ({"params": {"control_type": "canny"}}, "ControlNetSourceMissing"),
        ({"params": {"workflow": "qr_code"}}, "MissingExtraTexts"),
        ({"source_image": WEBP_B64, "extra_source_images": [{"image": WEBP_B64}] * 6}, "TooManyExtraSourceImages"),
    ],
)
async def test_request_checks(client: Client, requester: User, body: dict[str, Any], rc: str) -> None:
    status, answer = await post_async(client, requester, {"prompt": "x", **body})
    assert_error((status, answer), 400, rc)


async def test_face_fixers_do_not_count_as_upscalers(client: Client, requester: User) -> None:
    body = {
        "prompt": "x",
        "params": {"post_processing": ["GFPGAN", "CodeFormers", "RealESRGAN_x4plus", "strip_background"]},
    }
    assert (await post_async(client, requester, body))[0] == 202


async def test_controlnet_steps_default_to_20_and_cap_at_40(client: Client, horde: LocalHorde, requester: User) -> None:
    _, first = await post_async(
        client, requester, {"prompt": "x", "source_image": WEBP_B64, "params": {"control_type": "canny"}}
    )
    _, second = await post_async(
        client, requester, {"prompt": "x", "source_image": WEBP_B64, "params": {"control_type": "hed", "steps": 80}}
    )
    assert horde.state.requests[first["id"]].params["steps"] == 20
    assert horde.state.requests[second["id"]].params["steps"] == 40


async def test_check_and_status_through_the_lifecycle(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    _, created = await post_async(
        client, requester, {"prompt": "a fox", "nsfw": False, "params": {"n": 2, "seed": "9"}}
    )
    request_id = created["id"]
    check = await (await client.get(f"/api/v2/generate/check/{request_id}")).json()
    assert check == {
        "finished": 0, "processing": 0, "restarted": 0, "waiting": 2, "done": False, "faulted": False,
        "wait_time": check["wait_time"], "queue_position": 0, "kudos": 0, "is_possible": True,
    }  # fmt: skip
    _, job = await pop(client, owner, amount=2)
    assert (await client.put(path_of(job["r2_uploads"][0]), data=WEBP_BYTES)).status == 200
    await submit(client, owner, job["ids"][0], seed=9)
    check = await (await client.get(f"/api/v2/generate/check/{request_id}")).json()
    assert (check["finished"], check["processing"], check["waiting"], check["done"]) == (1, 1, 0, False)
    await submit(client, owner, job["ids"][1], state="faulted")
    check = await (await client.get(f"/api/v2/generate/check/{request_id}")).json()
    assert (check["finished"], check["restarted"], check["waiting"], check["done"]) == (1, 1, 1, False)
    _, retry = await pop(client, owner)
    await submit(client, owner, retry["ids"][0], seed=9)
    status = await (await client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert status["done"] is True and status["finished"] == 2 and status["kudos"] == 13.0
    assert status["shared"] is False
    generation = status["generations"][0]
    assert set(generation) == {
        "worker_id",
        "worker_name",
        "model",
        "state",
        "img",
        "seed",
        "id",
        "censored",
        "gen_metadata",
    }
    assert generation["seed"] == "9" and generation["worker_name"] == "worker-1" and generation["model"] == "Deliberate"
    image = await client.get(path_of(generation["img"]))
    assert await image.read() == WEBP_BYTES


async def test_status_without_r2_returns_base64(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    _, created = await post_async(client, requester, {"prompt": "x", "r2": False, "nsfw": False})
    _, job = await pop(client, owner)
    await submit(client, owner, job["ids"][0], generation=WEBP_B64)
    status = await (await client.get(f"/api/v2/generate/status/{created['id']}")).json()
    assert status["generations"][0]["img"] == WEBP_B64


async def test_cancel_stops_new_jobs_but_in_flight_ones_still_pay(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    _, created = await post_async(client, requester, {"prompt": "x", "nsfw": False, "params": {"n": 3}})
    _, job = await pop(client, owner)
    resp = await client.delete(f"/api/v2/generate/status/{created['id']}")
    assert resp.status == 200 and (await resp.json())["waiting"] == 0
    assert (await pop(client, owner))[1]["ids"] == []
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 6.5})


async def test_unknown_request_is_404(client: Client) -> None:
    for method in ("get", "delete"):
        resp = await getattr(client, method)("/api/v2/generate/status/nope")
        assert resp.status == 404 and (await resp.json())["rc"] == "RequestNotFound"
