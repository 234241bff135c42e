"""The reusable helpers: the pytest fixture factory, the background sweep, the Python API."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from horde_worker_regen.localhorde.app import sweep_forever
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import HORDE_KEY, LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import (
    LEVEL_13_POST_PROCESSORS,
    RunningLocalHorde,
    local_horde_fixture,
    post_processing_request,
)
from tests.localhorde.support import Client, pop, pop_body, queue

local_horde = local_horde_fixture(fake_clock=True)


async def test_fixture_factory_serves_on_a_real_port(local_horde: RunningLocalHorde) -> None:
    assert local_horde.base_url.startswith("http://127.0.0.1:") and local_horde.api_url.endswith("/api")
    assert isinstance(local_horde.clock, FakeClock)
    owner = local_horde.add_user("owner", trusted=True)
    requester = local_horde.add_user("requester", kudos=10)
    queue_request(local_horde.horde, requester, {"prompt": "x", "nsfw": False})
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{local_horde.api_url}/v2/generate/pop", json=pop_body(), headers={"apikey": owner.api_key}
        )
        job = await resp.json()
    assert len(job["ids"]) == 1
    local_horde.advance_clock(151)
    assert local_horde.sweep().aborted == job["ids"]
    assert local_horde.state.generations[job["ids"][0]].faulted


async def test_background_sweep_runs_on_its_interval(
    horde: LocalHorde, clock: FakeClock, client: Client, owner: User
) -> None:
    requester = horde.add_user("r", kudos=10)
    queue(horde, requester)
    _, job = await pop(client, owner)
    clock.advance(151)
    intervals: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        intervals.append(seconds)
        if len(intervals) == 2:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await sweep_forever(horde, 60, sleep=fake_sleep)
    assert intervals == [60, 60]
    assert horde.state.generations[job["ids"][0]].faulted


async def test_unsafe_ip_requests(client: Client, horde: LocalHorde, owner: User) -> None:
    requester = horde.add_user("vpn-user", kudos=10)
    queue_request(horde, requester, {"prompt": "x", "nsfw": False}, safe_ip=False)
    _, body = await pop(client, owner, allow_unsafe_ipaddr=False)
    assert body["ids"] == [] and body["skipped"]["unsafe_ip"] == 1
    untrusted = horde.add_user("untrusted-owner")
    _, body = await pop(client, untrusted, name="untrusted-worker")
    assert body["ids"] == [] and body["skipped"]["untrusted"] == 1
    _, body = await pop(client, owner, name="trusted-worker")
    assert len(body["ids"]) == 1


async def test_admin_can_queue_unsafe_ip_requests(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.add_user("vpn-user", kudos=10)
    resp = await client.post(
        "/_admin/requests", json={"username": "vpn-user", "unsafe_ip": True, "body": {"prompt": "x"}}
    )
    assert resp.status == 201
    assert horde.state.requests[(await resp.json())["id"]].safe_ip is False


async def test_python_api_faults_on_the_app_state(client: Client, horde: LocalHorde) -> None:
    assert client.app is not None and client.app[HORDE_KEY] is horde
    client.app[HORDE_KEY].faults.add(endpoint="heartbeat", kind="error", status=502, times=1)
    assert (await client.get("/api/v2/status/heartbeat")).status == 502


async def test_level_13_requests_and_the_agent_a_worker_popped_with(local_horde: RunningLocalHorde) -> None:
    owner = local_horde.add_user("owner", trusted=True)
    requester = local_horde.add_user("requester", kudos=1_000)
    for name in LEVEL_13_POST_PROCESSORS:
        wp = local_horde.queue(requester, post_processing_request("Deliberate", name, facefixer_strength=0.5))
        assert wp.params["post_processing"] == [name] and (wp.params["width"], wp.params["height"]) == (64, 64)
    assert local_horde.bridge_agent_of("worker-1") is None  # it never popped
    agent = "AI Horde Worker reGen:13:https://example.invalid"
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{local_horde.api_url}/v2/generate/pop",
            json=pop_body(bridge_agent=agent),
            headers={"apikey": owner.api_key},
        )
        job = await resp.json()
    assert job["payload"]["post_processing"][0] in LEVEL_13_POST_PROCESSORS
    assert local_horde.bridge_agent_of("worker-1") == agent
