"""The popper against the local horde: pops only with room, backs off as told, stops when it must."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import PoppedJob, bridge_agent, build_pop_request
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.pipeline.burst import BurstWatch
from horde_worker_regen.pipeline.popper import Popper, PopperSettings, backoff_delay
from horde_worker_regen.pipeline.stats import WorkerStats
from tests.jobs.conftest import HordeSession
from tests.worker_support import MODEL, queue


class StubPipeline:
    """Just enough of the pipeline for the popper: a registry, its event log, and popped jobs recorded."""

    def __init__(self) -> None:
        self.registry = JobRegistry()
        self.events = EventLog()

    def job_popped(self, job: PoppedJob, popped_at: float) -> JobRecord:
        record = JobRecord.from_pop(job, popped_at)
        self.registry.add(record)
        return record


def _popper(
    session: HordeSession,
    stops: list[tuple[str, int]],
    *,
    burst: bool = False,
    client: HordeClient | None = None,
    backoff_cap: float = 60.0,
    on_out_of_jobs: Callable[[], None] = lambda: None,
) -> tuple[Popper, StubPipeline]:
    data = BridgeData(api_key=session.owner.api_key, dreamer_name="Popper Dreamer", horde_url=session.horde.api_url)
    pipeline = StubPipeline()

    def on_stop(reason: str, code: int) -> None:
        stops.append((reason, code))

    popper = Popper(
        client or session.client,
        build_pop_request(data, [MODEL], bridge_agent(1)),
        pipeline,  # type: ignore[arg-type]
        WorkerStats(),
        PopperSettings(slots=2, queue_size=1, idle_interval=7.0, backoff_cap=backoff_cap),
        on_stop=on_stop,
        burst=BurstWatch(on_stop).join("job") if burst else None,
        on_out_of_jobs=on_out_of_jobs,
    )
    return popper, pipeline


async def test_pops_until_slots_and_queue_are_full_then_waits_for_a_change(horde_session: HordeSession) -> None:
    for index in range(5):
        queue(horde_session.horde, horde_session.requester, f"a tree {index}")
    popper, pipeline = _popper(horde_session, [])
    changed = asyncio.Event()
    pipeline.registry.subscribe(lambda record, previous: changed.set())

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    task = asyncio.create_task(popper.run())
    try:
        await asyncio.wait_for(until(lambda: len(pipeline.registry) == 3), 10)
        assert len(horde_session.horde.state.generations) == 3  # 2 slots + 1 queue place, and no more
        first = pipeline.registry.in_state(JobState.POPPED)[0]
        pipeline.registry.move(first, JobState.DROPPED)  # a place frees: the popper wakes and pops again
        await asyncio.wait_for(until(lambda: len(horde_session.horde.state.generations) == 4), 10)
        assert len(pipeline.registry) == 3
        # Each answered pop is timed, under the key of the job it brought.
        answered = pipeline.events.of_kind("pop_answered")
        assert [event.job for event in answered] == [pg.id for pg in horde_session.horde.state.generations.values()]
        assert all(event.fields["seconds"] >= 0 for event in answered)
    finally:
        popper.stop()
        await asyncio.wait_for(task, 10)


async def test_no_job_waits_and_burst_mode_stops_when_idle(horde_session: HordeSession) -> None:
    stops: list[tuple[str, int]] = []
    popper, _ = _popper(horde_session, stops)
    assert 6.0 < await popper._pop_once() <= 7.0  # idle_interval, less the time the pop took
    burst, _ = _popper(horde_session, stops, burst=True)
    assert await burst._pop_once() == 0.0
    assert stops == [("burst mode: the horde has no job and nothing is in flight", 0)]


async def test_image_jobs_are_coming_until_a_pop_comes_back_empty(horde_session: HordeSession) -> None:
    out_of_jobs: list[bool] = []
    popper, _ = _popper(horde_session, [], on_out_of_jobs=lambda: out_of_jobs.append(popper.jobs_coming))
    coming = [popper.jobs_coming]  # not asked yet: a slot that frees stays the image jobs'
    queue(horde_session.horde, horde_session.requester, "a heron")
    for _ in range(3):  # a job, then two empty pops
        await popper._pop_once()
        coming.append(popper.jobs_coming)
    queue(horde_session.horde, horde_session.requester, "a crane")
    await popper._pop_once()
    coming.append(popper.jobs_coming)
    popper.set_models([])  # nothing left to offer: no image job can come
    coming.append(popper.jobs_coming)
    assert coming == [True, True, False, False, True, False]
    assert out_of_jobs == [False]  # told once, at once, when the jobs stopped coming (alchemy may fill slots)


async def test_pops_come_faster_right_after_a_job(horde_session: HordeSession) -> None:
    popper, pipeline = _popper(horde_session, [])
    queue(horde_session.horde, horde_session.requester, "a heron")
    assert await popper._pop_once() == 0.0  # a job: pop again at once
    assert len(pipeline.registry) == 1
    assert 1.0 < await popper._pop_once() <= 7.0 / 4  # the queue is empty now; the next request is likely near


async def test_rate_limits_honour_retry_after_and_errors_back_off(horde_session: HordeSession) -> None:
    popper, _ = _popper(horde_session, [])
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=1, retry_after=9)
    assert await popper._pop_once() == 9.0
    horde_session.horde.faults.add(endpoint="pop", kind="error", status=500, times=2)
    assert 0.5 <= await popper._pop_once() <= 1.0  # 1 s, 2 s, ... jittered down by up to half
    assert 1.0 <= await popper._pop_once() <= 2.0


async def test_a_fatal_error_stops_the_worker_with_a_message(horde_session: HordeSession) -> None:
    stops: list[tuple[str, int]] = []
    popper, _ = _popper(horde_session, stops)
    other = horde_session.horde.add_user("other", trusted=True)
    stranger, _ = _popper(
        horde_session, stops, client=HordeClient(horde_session.session, horde_session.horde.api_url, other.api_key)
    )
    await popper._pop_once()  # creates the worker for the owner
    assert await stranger._pop_once() == 0.0  # the same name with another user's key
    assert stops and stops[-1][1] == 1 and "unique dreamer_name" in stops[-1][0]


async def test_pops_nothing_until_a_model_is_ready_then_offers_it(horde_session: HordeSession) -> None:
    queue(horde_session.horde, horde_session.requester, "a lake")
    pops: list[object] = []

    class CountingClient:
        async def pop(self, request: ImageGenerateJobPopRequest) -> Any:
            pops.append(request)
            return await horde_session.client.pop(request)

    popper, pipeline = _popper(horde_session, [], client=CountingClient())  # type: ignore[arg-type]
    popper.set_models([])
    popped = asyncio.Event()
    pipeline.registry.subscribe(lambda record, previous: popped.set())
    loop = asyncio.get_running_loop()
    task = loop.create_task(popper.run())
    pops_before_a_model: list[int] = []

    def a_download_finished() -> None:
        pops_before_a_model.append(len(pops))
        popper.set_models([MODEL])

    # Callbacks run in order: the popper's first step (up to its first wait), then this one.
    loop.call_soon(a_download_finished)
    try:
        await asyncio.wait_for(popped.wait(), 10)
        assert pops_before_a_model == [0]
        assert popper.models == [MODEL]
        assert len(horde_session.horde.state.generations) == 1
    finally:
        popper.stop()
        await asyncio.wait_for(task, 10)


async def test_each_pop_offers_the_models_in_the_order_residency_gives(horde_session: HordeSession) -> None:
    sent: list[list[str]] = []

    class RecordingClient:
        async def pop(self, request: ImageGenerateJobPopRequest) -> dict[str, object]:
            sent.append(list(request.models))
            return {"ids": [], "skipped": {}}

    popper, _ = _popper(horde_session, [], client=RecordingClient())  # type: ignore[arg-type]
    popper.set_models(["A", "B", MODEL])
    popper._offer = lambda models: list(reversed(models))
    await popper._pop_once()
    assert sent == [[MODEL, "B", "A"]]
    assert popper.models == ["A", "B", MODEL]  # the configured list itself is unchanged


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The popper's WARNING and INFO lines, as an operator reads them."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message).strip()),
        level="INFO",
        filter="horde_worker_regen.pipeline.popper",
        format="{level} {message}",
    )
    yield lines
    logger.remove(sink)


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(failures, 8.0, rng) for failures in range(1, 9)]
    assert all(2.0 ** (n - 1) / 2 <= d <= 2.0 ** (n - 1) for n, d in enumerate(delays[:4], start=1))
    assert all(4.0 <= d <= 8.0 for d in delays[4:])
    assert len(set(delays)) == len(delays)  # jittered: workers that lost the horde together do not return in step


async def test_maintenance_stops_popping_keeps_checking_and_resumes_by_itself(
    horde_session: HordeSession, warnings: list[str]
) -> None:
    popper, pipeline = _popper(horde_session, [], backoff_cap=4.0)
    assert 6.0 < await popper._pop_once() <= 7.0  # creates the worker; no job yet
    queue(horde_session.horde, horde_session.requester, "a lighthouse")
    horde_session.horde.horde.set_maintenance("Popper Dreamer", True, "Too many faulted jobs")
    delays = [await popper._pop_once() for _ in range(4)]
    assert popper.maintenance_message == "Too many faulted jobs"
    assert popper.horde_state == "in maintenance"
    assert len(pipeline.registry) == 0 and all(0 < delay <= 4.0 for delay in delays)
    told = [line for line in warnings if "maintenance" in line]
    assert len(told) == 1, "one line when maintenance begins, not one per check"
    assert "Too many faulted jobs" in told[0] and "remove_maintenance_on_init" in told[0]
    horde_session.horde.horde.set_maintenance("Popper Dreamer", False)
    assert await popper._pop_once() == 0.0  # the next check pops the waiting job
    # The awaits above changed the message; mypy would keep the earlier assert's narrowing to str.
    assert cast("str | None", popper.maintenance_message) is None and len(pipeline.registry) == 1
    assert any("out of maintenance; popping again" in line for line in warnings)


async def test_an_unreachable_horde_is_logged_once_and_popping_resumes_when_it_is_back(
    horde_session: HordeSession, warnings: list[str]
) -> None:
    popper, pipeline = _popper(horde_session, [], backoff_cap=2.0)
    queue(horde_session.horde, horde_session.requester, "a mountain")
    down = horde_session.horde.faults.add(endpoint="pop", kind="down")
    delays = [await popper._pop_once() for _ in range(5)]
    assert all(0 < delay <= 2.0 for delay in delays) and delays[-1] >= 1.0  # grew to the cap
    assert len(pipeline.registry) == 0
    assert popper.horde_state == "horde unreachable"  # what the dashboard and /status.json show
    assert len([line for line in warnings if "cannot be reached" in line]) == 1
    horde_session.horde.faults.remove(down.id)
    assert await popper._pop_once() == 0.0
    assert popper.horde_state == "serving"
    assert len(pipeline.registry) == 1
    assert len([line for line in warnings if "answers again" in line]) == 1


async def test_refused_connections_count_as_unreachable(horde_session: HordeSession, warnings: list[str]) -> None:
    closed = HordeClient(horde_session.session, "http://127.0.0.1:9/api", horde_session.owner.api_key)
    popper, _ = _popper(horde_session, [], client=closed, backoff_cap=1.0)
    for _ in range(3):
        assert 0 < await popper._pop_once() <= 1.0
    assert len([line for line in warnings if "cannot be reached" in line]) == 1
