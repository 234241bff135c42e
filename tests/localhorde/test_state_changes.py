"""Waiting for the local horde's state: `wait_for_state` wakes on each request handled and each sweep,
returns as soon as its condition holds, and times out when nothing makes it hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.localhorde.support import pop_body, queue

WAIT_S = 30.0  # a bound for a wait that an event ends at once; only a broken wake-up reaches it


class Condition:
    """A condition that counts its checks and tells when it was first checked (the waiter is then waiting)."""

    def __init__(self, holds: Callable[[], bool]) -> None:
        self.holds = holds
        self.checks = 0
        self.checked = asyncio.Event()

    def __call__(self) -> bool:
        self.checks += 1
        self.checked.set()
        return self.holds()


async def _pop(horde: RunningLocalHorde, api_key: str, name: str = "worker-1") -> int:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{horde.api_url}/v2/generate/pop", json=pop_body(name), headers={"apikey": api_key}
        )
        return response.status


async def _waiting(horde: RunningLocalHorde, condition: Condition, timeout: float = WAIT_S) -> asyncio.Task[None]:
    """Start waiting for `condition`; returns once the waiter has checked it (and found it false)."""
    waiter = asyncio.create_task(horde.wait_for_state(condition, timeout))
    await condition.checked.wait()
    assert not waiter.done()
    return waiter


async def test_a_request_that_changes_the_state_wakes_the_waiter(live_horde: RunningLocalHorde) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    condition = Condition(lambda: live_horde.horde.worker("worker-1") is not None)
    waiter = await _waiting(live_horde, condition)
    assert await _pop(live_horde, owner.api_key) == 200  # the worker's first pop creates it
    await asyncio.wait_for(waiter, WAIT_S)
    assert condition.checks == 2  # once at first, once after the request: no polling in between


async def test_every_request_is_announced_even_one_refused_by_a_fault(live_horde: RunningLocalHorde) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    refusal = live_horde.faults.add(endpoint="pop", kind="error", status=503, times=2)
    condition = Condition(lambda: refusal.fired == 2)
    waiter = await _waiting(live_horde, condition)
    assert await _pop(live_horde, owner.api_key) == 503
    assert condition.checks == 2 and not waiter.done()  # checked after the request; still false
    assert await _pop(live_horde, owner.api_key) == 503
    await asyncio.wait_for(waiter, WAIT_S)
    assert condition.checks == 3


async def test_a_sweep_wakes_the_waiter(live_horde: RunningLocalHorde, clock: FakeClock) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    requester = live_horde.add_user("requester", kudos=100)
    wp = queue(live_horde.horde, requester)
    assert await _pop(live_horde, owner.api_key) == 200
    [job] = live_horde.state.generations_of(wp)
    waiter = await _waiting(live_horde, Condition(lambda: job.faulted))
    clock.advance(151)
    assert live_horde.sweep().aborted == [job.id]
    await asyncio.wait_for(waiter, WAIT_S)


async def test_a_condition_that_already_holds_returns_at_once(live_horde: RunningLocalHorde) -> None:
    condition = Condition(lambda: True)
    await live_horde.wait_for_state(condition, timeout=0)
    assert condition.checks == 1


async def test_a_condition_nothing_makes_true_times_out(live_horde: RunningLocalHorde) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    condition = Condition(lambda: live_horde.horde.worker("never-popped") is not None)
    waiter = await _waiting(live_horde, condition, timeout=0.5)
    assert await _pop(live_horde, owner.api_key) == 200  # a change, but not the one waited for
    with pytest.raises(TimeoutError):
        await waiter
    assert condition.checks == 2
    assert live_horde.horde.changes.listening == 0  # the waiter stopped listening when it gave up


async def test_a_failing_listener_does_not_fail_the_request(live_horde: RunningLocalHorde) -> None:
    owner = live_horde.add_user("owner", trusted=True)
    heard: list[str] = []

    def failing() -> None:
        raise RuntimeError("a broken listener")

    live_horde.horde.changes.subscribe(failing)
    stop = live_horde.horde.changes.subscribe(lambda: heard.append("change"))
    assert await _pop(live_horde, owner.api_key) == 200
    assert heard == ["change"]
    stop()
    assert await _pop(live_horde, owner.api_key) == 200
    assert heard == ["change"]  # stopped listening
