"""One test per fault switch, plus the rule semantics and the admin API that drives them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.localhorde.admin import _is_loopback
from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.faults import FaultInjector
from horde_worker_regen.localhorde.pop import FORCED_MAINTENANCE_MESSAGE
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.localhorde.support import WEBP_B64, WEBP_BYTES, Client, assert_error, path_of, pop, pop_body, queue, submit


async def test_error_fault_answers_before_applying(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.faults.add(endpoint="pop", kind="error", times=1)
    assert await pop(client, owner) == (500, {"message": "Internal Server Error"})
    assert horde.worker("worker-1") is None  # not applied
    assert (await pop(client, owner))[0] == 200  # `times` used up
    assert horde.faults.rules() == []


async def test_error_fault_with_another_status_on_submit(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="submit", kind="error", status=503, times=2)
    for _ in range(2):
        assert await submit(client, owner, job["ids"][0]) == (503, {"message": "Service Unavailable"})
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 6.5})  # the 503s did not land


async def test_latency_fault_delays_the_answer(client: Client, horde: LocalHorde) -> None:
    horde.faults.add(endpoint="heartbeat", kind="latency", latency_s=0.2, times=1)
    started = time.monotonic()
    resp = await client.get("/api/v2/status/heartbeat")
    assert resp.status == 200
    assert time.monotonic() - started >= 0.2


async def test_latency_fault_can_outlast_a_client_timeout(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.faults.add(endpoint="pop", kind="latency", latency_s=0.5, times=1)
    with pytest.raises(asyncio.TimeoutError):
        await client.post(
            "/api/v2/generate/pop",
            json=pop_body(),
            headers={"apikey": owner.api_key},
            timeout=aiohttp.ClientTimeout(total=0.05),
        )


async def test_drop_fault_applies_the_submit_and_loses_the_response(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    """The lost-response case: the retry of a submit that landed gets `DuplicateGen`."""
    queue(horde, requester)
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="submit", kind="drop", times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(client, owner, job["ids"][0])
    assert horde.state.generations[job["ids"][0]].is_completed
    assert owner.kudos == pytest.approx(106.5)
    status, body = await submit(client, owner, job["ids"][0])
    assert_error(
        (status, body), 400, "DuplicateGen", f"Processing Generation with ID {job['ids'][0]} already submitted."
    )


async def test_drop_fault_on_pop_loses_a_started_job(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester)
    horde.faults.add(endpoint="pop", kind="drop", times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pop(client, owner)
    assert wp.n == 0 and len(horde.state.generations) == 1
    clock.advance(151)
    assert len(horde.sweep().aborted) == 1 and wp.n == 1


async def test_rate_limit_fault_is_a_429_burst_with_retry_after(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.faults.add(endpoint="pop", kind="rate_limit", times=3, retry_after=2)
    for _ in range(3):
        resp = await client.post("/api/v2/generate/pop", json=pop_body(), headers={"apikey": owner.api_key})
        assert resp.status == 429
        assert await resp.json() == {"message": "60 per 1 second"}
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["X-RateLimit-Limit"] == "60" and resp.headers["X-RateLimit-Remaining"] == "0"
        assert "X-RateLimit-Reset" in resp.headers
    assert (await pop(client, owner))[0] == 200


async def test_expired_url_fault_on_upload(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester)
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="upload", kind="expired_url", times=1)
    resp = await client.put(path_of(job["r2_uploads"][0]), data=WEBP_BYTES)
    assert resp.status == 403 and "Request has expired" in await resp.text()
    assert (await client.put(path_of(job["r2_uploads"][0]), data=WEBP_BYTES)).status == 200


async def test_expired_url_fault_on_source(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester, source_image=WEBP_B64)
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="source", kind="expired_url")
    for _ in range(2):
        assert (await client.get(path_of(job["source_image"]))).status == 403
    horde.faults.clear("source")
    assert (await client.get(path_of(job["source_image"]))).status == 200


async def test_empty_model_fault(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester, params={"n": 2}, disable_batching=True)
    horde.faults.add(endpoint="pop", kind="empty_model", times=1)
    _, first = await pop(client, owner)
    _, second = await pop(client, owner)
    assert first["model"] == "" and len(first["ids"]) == 1
    assert second["model"] == "Deliberate"


async def test_mangle_fault_changes_one_field_of_the_next_job_answer_only(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    horde.faults.add(endpoint="pop", kind="mangle", path=["payload", "sampler_name"], value={"a": [1]}, times=1)
    horde.faults.add(endpoint="pop", kind="mangle", path=["ttl"], remove=True, times=1)
    _, no_job = await pop(client, owner)
    assert no_job["ids"] == [] and no_job["payload"]["sampler_name"] == "k_euler_a"  # not a job: untouched
    queue(horde, requester, params={"n": 3}, disable_batching=True)
    _, first = await pop(client, owner)
    assert first["payload"]["sampler_name"] == {"a": [1]} and first["ttl"] == 150
    _, second = await pop(client, owner)
    assert "ttl" not in second and second["payload"]["sampler_name"] == "k_euler_a"
    _, third = await pop(client, owner)
    assert third["ttl"] == 150 and horde.faults.rules() == []


async def test_mangle_fault_with_a_path_outside_the_answer_changes_nothing(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    horde.faults.add(endpoint="pop", kind="mangle", path=["extra_source_images", 0, "image"], value=1, times=1)
    _, job = await pop(client, owner)
    assert job["extra_source_images"] is None and len(job["ids"]) == 1


async def test_maintenance_fault_forces_maintenance_until_cleared(
    client: Client, horde: LocalHorde, owner: User
) -> None:
    await pop(client, owner)
    horde.faults.add(endpoint="pop", kind="maintenance", times=1)
    status, body = await pop(client, owner)
    assert_error((status, body), 403, "WorkerMaintenance", FORCED_MAINTENANCE_MESSAGE)
    assert (await pop(client, owner))[0] == 403  # it sticks: the worker is in maintenance
    worker = horde.worker("worker-1")
    assert worker is not None
    resp = await client.put(
        f"/api/v2/workers/{worker.id}", json={"maintenance": False}, headers={"apikey": owner.api_key}
    )
    assert resp.status == 200
    assert (await pop(client, owner))[0] == 200


async def test_wildcard_and_skip(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.faults.add(endpoint="*", kind="error", status=502, skip=1, times=1)
    assert (await client.get("/api/v2/status/heartbeat")).status == 200  # skipped
    assert (await client.get("/api/v2/status/modes")).status == 502
    assert (await client.get("/api/v2/status/modes")).status == 200


def test_fault_rules_validate() -> None:
    faults = FaultInjector()
    with pytest.raises(ValueError, match="unknown endpoint"):
        faults.add(endpoint="nope", kind="error")
    with pytest.raises(ValueError):
        faults.add(endpoint="pop", kind="explode")
    rule = faults.add({"endpoint": "pop", "kind": "error"})
    assert faults.take("submit", "error") is None
    assert faults.take("pop", "latency") is None
    assert faults.take("pop", "error") is rule and rule.fired == 1
    assert faults.remove(rule.id) and faults.rules() == []


async def test_admin_fault_api(client: Client, owner: User) -> None:
    resp = await client.post("/_admin/faults", json={"rules": [{"endpoint": "pop", "kind": "error", "status": 504}]})
    assert resp.status == 201
    added = (await resp.json())["faults"]
    assert added[0]["endpoint"] == "pop" and added[0]["status"] == 504 and added[0]["id"] >= 1
    listed = await (await client.get("/_admin/faults")).json()
    assert [rule["id"] for rule in listed["faults"]] == [added[0]["id"]]
    assert (await pop(client, owner))[0] == 504
    resp = await client.delete(f"/_admin/faults/{added[0]['id']}")
    assert await resp.json() == {"removed": True}
    assert (await pop(client, owner))[0] == 200
    await client.post("/_admin/faults", json={"endpoint": "submit", "kind": "drop"})
    assert await (await client.delete("/_admin/faults")).json() == {"faults": []}
    resp = await client.post("/_admin/faults", json={"endpoint": "pop", "kind": "boom"})
    assert resp.status == 400


async def test_admin_users_requests_models_clock_sweep_and_maintenance(
    client: Client, horde: LocalHorde, clock: FakeClock
) -> None:
    resp = await client.post(
        "/_admin/users", json={"username": "alice", "kudos": 50, "trusted": True, "roles": ["customizer"]}
    )
    assert resp.status == 201
    alice = await resp.json()
    assert alice["alias"] == f"alice#{alice['id']}" and len(alice["api_key"]) == 22
    resp = await client.post("/_admin/models", json={"name": "Test Checkpoint", "baseline": "stable_diffusion_xl"})
    assert resp.status == 201 and horde.reference.baseline("Test Checkpoint") == "stable_diffusion_xl"
    resp = await client.post(
        "/_admin/requests", json={"username": "alice", "body": {"prompt": "x", "models": ["Test Checkpoint"]}}
    )
    assert resp.status == 201
    _, job = await pop(client, alice["api_key"], models=["Test Checkpoint"])
    assert job["model"] == "Test Checkpoint"
    resp = await client.post("/_admin/workers/worker-1/maintenance", json={"maintenance": True, "message": "hold"})
    assert await resp.json() == {"maintenance": True, "maintenance_msg": "hold"}
    before = clock.now()
    assert await (await client.post("/_admin/clock", json={"advance": 200})).json() == {"now": before + 200}
    assert (await (await client.get("/_admin/clock")).json())["fake"] is True
    swept = await (await client.post("/_admin/sweep")).json()
    assert swept == {"aborted": job["ids"], "expired": [], "aborted_forms": [], "expired_interrogations": []}
    state = await (await client.get("/_admin/state")).json()
    assert state["workers"][0]["name"] == "worker-1" and "api_key" not in str(state)


async def test_admin_clock_needs_a_fake_clock(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(LocalHordeConfig(sweep_interval=0)))
    resp = await client.post("/_admin/clock", json={"advance": 1})
    assert resp.status == 409


async def test_admin_api_can_be_disabled(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(LocalHordeConfig(sweep_interval=0, admin_enabled=False)))
    resp = await client.get("/_admin/faults")
    assert resp.status == 403


def test_admin_api_is_loopback_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.5.0.1")
    assert not _is_loopback("192.168.1.10") and not _is_loopback(None) and not _is_loopback("garbage")


async def test_drop_over_a_real_socket(live_horde: RunningLocalHorde) -> None:
    """The drop fault closes a real TCP connection; the client sees a disconnect, not an answer.

    aiohttp retries idempotent methods (GET, PUT, ...) once by itself after a disconnect, so a
    single dropped GET is invisible to it; a POST such as pop or submit is not retried.
    """
    owner = live_horde.add_user("owner", trusted=True)
    live_horde.faults.add(endpoint="pop", kind="drop", times=1)
    live_horde.faults.add(endpoint="find_user", kind="drop", times=1)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(
                f"{live_horde.api_url}/v2/generate/pop", json=pop_body(), headers={"apikey": owner.api_key}
            )
        assert live_horde.horde.worker("worker-1") is not None  # the pop was applied
        resp = await session.get(f"{live_horde.api_url}/v2/find_user", headers={"apikey": owner.api_key})
        assert resp.status == 200  # dropped once, retried by the client
    assert live_horde.faults.rules() == []


async def test_wrong_credentials_fault_on_pop_and_submit(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    horde.faults.add(endpoint="pop", kind="wrong_credentials", times=1)
    assert_error(await pop(client, owner), 403, "WrongCredentials", "Wrong credentials to submit as this worker.")
    assert horde.worker("worker-1") is None  # refused before it was applied
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="submit", kind="wrong_credentials", times=1)
    assert_error(await submit(client, owner, job["ids"][0]), 403, "WrongCredentials")
    assert not horde.state.generations[job["ids"][0]].is_completed
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 6.5})


async def test_a_dropped_answer_is_kept_so_the_jobs_it_carried_can_be_accounted(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    horde.faults.add(endpoint="pop", kind="drop", times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pop(client, owner)
    [lost] = horde.faults.lost_responses
    [pg] = horde.state.generations.values()
    assert lost.endpoint == "pop" and lost.status == 200
    assert json.loads(lost.body)["ids"] == [pg.id]


async def test_a_dropped_submit_answer_keeps_the_request_so_its_job_is_known(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, job = await pop(client, owner)
    horde.faults.add(endpoint="submit", kind="drop", times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(client, owner, job["ids"][0])
    [lost] = horde.faults.lost_responses
    assert (lost.endpoint, lost.status, json.loads(lost.request)["id"]) == ("submit", 200, job["ids"][0])
