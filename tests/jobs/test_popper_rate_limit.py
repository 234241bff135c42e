"""The popper under rate limits: it waits as long as the horde asks, within bounds, and never stops."""

from __future__ import annotations

from horde_worker_regen.horde.retry_after import MAX_RETRY_AFTER_S
from tests.jobs.conftest import HordeSession
from tests.jobs.test_popper import _popper
from tests.worker_support import queue


async def test_a_burst_of_429s_waits_as_told_each_time_then_pops_the_job(horde_session: HordeSession) -> None:
    queue(horde_session.horde, horde_session.requester, "a lake")
    stops: list[tuple[str, int]] = []
    popper, pipeline = _popper(horde_session, stops)
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=20, retry_after=2)
    assert [await popper._pop_once() for _ in range(20)] == [2.0] * 20  # no growing backoff on top
    assert await popper._pop_once() == 0.0 and len(pipeline.registry) == 1
    assert stops == []


async def test_retry_after_zero_is_no_tight_loop(horde_session: HordeSession) -> None:
    popper, _ = _popper(horde_session, [])
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=1, retry_after=0)
    assert 0.5 <= await popper._pop_once() <= 1.0


async def test_an_absurd_retry_after_is_capped(horde_session: HordeSession) -> None:
    popper, _ = _popper(horde_session, [])
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=1, retry_after=10**9)
    assert await popper._pop_once() == MAX_RETRY_AFTER_S
