"""find_user, worker details and modification, heartbeat, status/models, stats/img/models, modes."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig, ModelStatsConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from tests.localhorde.support import Client, assert_error, pop, queue, submit


async def get(client: Client, path: str, key: str | None = None) -> tuple[int, Any]:
    resp = await client.get(path, headers={"apikey": key} if key else {})
    return resp.status, await resp.json()


async def put(client: Client, worker_id: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    resp = await client.put(f"/api/v2/workers/{worker_id}", json=body, headers={"apikey": key})
    return resp.status, await resp.json()


async def test_find_user(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester)
    _, job = await pop(client, owner)
    await submit(client, owner, job["ids"][0])
    status, body = await get(client, "/api/v2/find_user", owner.api_key)
    assert status == 200
    assert body["username"] == "owner#1" and body["id"] == 1
    assert body["kudos"] == 106.5 and body["evaluating_kudos"] == 0
    assert body["trusted"] is True and body["worker_count"] == 1
    assert body["worker_ids"] == [horde.worker("worker-1").id]  # type: ignore[union-attr]
    assert body["records"]["fulfillment"]["image"] == 1


async def test_find_user_errors(client: Client) -> None:
    status, body = await get(client, "/api/v2/find_user")
    assert_error((status, body), 401, "InvalidAPIKey")
    status, body = await get(client, "/api/v2/find_user", "unknown-key")
    assert_error((status, body), 404, "UserNotFound")


async def test_worker_details_by_id_and_name(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner, models=["Deliberate", "SDXL 1.0"], max_pixels=1048576)
    worker = horde.worker("worker-1")
    assert worker is not None
    status, body = await get(client, f"/api/v2/workers/{worker.id}")
    assert status == 200
    assert body["name"] == "worker-1" and body["id"] == worker.id and body["online"] is True
    assert body["models"] == ["Deliberate", "SDXL 1.0"] and body["max_pixels"] == 1048576
    assert body["maintenance_mode"] is False and body["type"] == "image"
    assert "paused" not in body and "owner" not in body  # privileged fields
    _, privileged = await get(client, f"/api/v2/workers/{worker.id}", owner.api_key)
    assert privileged["paused"] is False and privileged["owner"] == "owner#1"
    status, by_name = await get(client, "/api/v2/workers/name/worker-1")
    assert status == 200 and by_name["id"] == worker.id


async def test_worker_not_found(client: Client) -> None:
    status, body = await get(client, "/api/v2/workers/nope")
    assert (status, body) == (404, {"message": "Worker with ID 'nope' not found.", "rc": "WorkerNotFound"})
    status, body = await get(client, "/api/v2/workers/name/nobody")
    assert_error((status, body), 404, "WorkerNotFound")


async def test_worker_goes_offline_after_300s(client: Client, clock: FakeClock, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None
    clock.advance(301)
    assert (await get(client, f"/api/v2/workers/{worker.id}"))[1]["online"] is False


async def test_put_maintenance_with_a_message(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None
    assert await put(client, worker.id, {"maintenance": True, "maintenance_msg": "upgrading"}, owner.api_key) == (
        200,
        {"maintenance": True},
    )
    assert (await pop(client, owner))[1] == {"message": "upgrading", "rc": "WorkerMaintenance"}
    assert (await get(client, f"/api/v2/workers/{worker.id}"))[1]["maintenance_mode"] is True


@pytest.mark.parametrize(
    ("who", "body", "status", "rc"),
    [
        ("stranger", {"maintenance": False}, 403, "NotOwner"),
        ("owner", {"paused": True}, 403, "NotModerator"),
        ("owner", {}, 400, "NoWorkerModSelected"),
        ("anon", {"maintenance": False}, 403, "AnonForbiddenWorker"),
        ("unknown", {"maintenance": False}, 401, "InvalidAPIKey"),
    ],
)
async def test_put_errors(
    *, client: Client, horde: LocalHorde, owner: User, who: str, body: dict[str, Any], status: int, rc: str
) -> None:
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None
    keys = {"owner": owner.api_key, "anon": "0000000000", "unknown": "nope"}
    key = keys.get(who) or horde.add_user("stranger", trusted=True).api_key
    got_status, got = await put(client, worker.id, body, key)
    assert_error((got_status, got), status, rc)


async def test_moderators_may_pause_and_unpause(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None
    mod = horde.add_user("mod", roles=["moderator"])
    assert await put(client, worker.id, {"paused": True, "info": "checked"}, mod.api_key) == (
        200,
        {"paused": True, "info": "checked"},
    )
    assert worker.paused is True and worker.info == "checked"


async def test_rename_and_name_conflict(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner)
    await pop(client, owner, name="worker-2")
    worker = horde.worker("worker-1")
    assert worker is not None
    status, body = await put(client, worker.id, {"name": "worker-2"}, owner.api_key)
    assert_error((status, body), 400, "WorkerNameAlreadyExists")
    assert await put(client, worker.id, {"name": "renamed"}, owner.api_key) == (200, {"name": "renamed"})
    assert horde.worker("renamed") is worker and horde.worker("worker-1") is None


async def test_paused_workers_get_fake_jobs_that_credit_nothing(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None
    worker.paused = True
    wp = queue(horde, requester)
    _, job = await pop(client, owner)
    assert len(job["ids"]) == 1 and wp.n == 1  # looks normal; the request still waits
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 6.5})
    assert owner.kudos == 100 and requester.kudos == 5000


async def test_heartbeat(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    await pop(client, owner)
    queue(horde, requester, params={"n": 3})
    status, body = await get(client, "/api/v2/status/heartbeat")
    assert status == 200
    assert body == {
        "message": "OK",
        "version": "5.1.5",
        "queue": 3,
        "threads": 1,
        "active_count": 1,
        "db_connection": True,
    }


async def test_status_models(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    await pop(client, owner, models=["Deliberate"])
    queue(horde, requester, models=["Deliberate"], params={"n": 2})
    queue(horde, requester, models=["SDXL 1.0"])
    status, body = await get(client, "/api/v2/status/models?type=image")
    assert status == 200
    by_name = {entry["name"]: entry for entry in body}
    assert by_name["Deliberate"]["count"] == 1 and by_name["Deliberate"]["jobs"] == 2
    assert by_name["Deliberate"]["queued"] == 2 * 512 * 512 * 30 and by_name["Deliberate"]["type"] == "image"
    assert by_name["SDXL 1.0"]["count"] == 0 and by_name["SDXL 1.0"]["jobs"] == 1


async def test_modes(client: Client) -> None:
    assert await get(client, "/api/v2/status/modes") == (200, {"maintenance_mode": False, "invite_only_mode": False})


async def test_stats_img_models_seeded_then_counted(aiohttp_client: Any, clock: FakeClock) -> None:
    stats = ModelStatsConfig(day={"Deliberate": 5}, month={"Deliberate": 50, "SDXL 1.0": 7}, total={"Deliberate": 500})
    horde = LocalHorde(LocalHordeConfig(model_stats=stats, sweep_interval=0), clock=clock)
    client = await aiohttp_client(create_app(horde=horde))
    owner = horde.add_user("o", trusted=True)
    queue(horde, owner)
    _, job = await pop(client, owner)
    await submit(client, owner, job["ids"][0])
    status, body = await get(client, "/api/v2/stats/img/models")
    assert status == 200
    assert body == {
        "day": {"Deliberate": 6},
        "month": {"Deliberate": 51, "SDXL 1.0": 7},
        "total": {"Deliberate": 501},
    }
    clock.advance(24 * 3600 + 1)
    assert (await get(client, "/api/v2/stats/img/models"))[1]["day"] == {"Deliberate": 5}


async def test_routes_also_answer_without_the_api_prefix(client: Client, owner: User) -> None:
    status, _ = await get(client, "/v2/status/heartbeat")
    assert status == 200
    resp = await client.post(
        "/v2/generate/pop", json={"name": "x-worker", "models": ["Deliberate"]}, headers={"apikey": owner.api_key}
    )
    assert resp.status == 200


async def test_unknown_routes_answer_like_werkzeug(client: Client) -> None:
    resp = await client.get("/api/v2/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["message"].startswith("The requested URL was not found on the server.")
    resp = await client.get("/api/v2/generate/pop")
    assert resp.status == 405


async def test_timed_out_fake_jobs_do_not_grow_the_request(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    await pop(client, owner)
    horde.worker("worker-1").paused = True  # type: ignore[union-attr]
    wp = queue(horde, requester)
    _, job = await pop(client, owner)
    assert job["ids"] and wp.n == 1
    clock.advance(151)
    assert horde.sweep().aborted == job["ids"]
    assert wp.n == 1
