"""The dashboard's history: the ring stays bounded and ordered, the sampler turns the worker's figures into
the charts' series, and /history.json serves them (only the newer ones with ?since=)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.history import SERIES, HistoryRing, Sample, record_sample
from horde_worker_regen.dashboard.sampler import HistorySampler
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.jobs.events import EventLog
from tests.dashboard.conftest import Parts, build_parts
from tests.dashboard.test_snapshot_and_metrics import _finished_on_slot, _job

DATA = BridgeData(api_key="k" * 22, dreamer_name="History Dreamer", max_threads=2, queue_size=2)
TIMES = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def _sample(t: float, value: float = 1.0) -> Sample:
    return Sample(t, dict.fromkeys(SERIES, value), (value,))


@given(st.lists(TIMES, max_size=60), st.integers(0, 20), st.floats(1, 5000))
def test_the_ring_is_bounded_by_count_and_age_and_ordered(times: list[float], points: int, age: float) -> None:
    ring = HistoryRing(max_points=points, max_age_s=age)
    for t in times:
        ring.add(_sample(t))
    kept = [sample.t for sample in ring.since()]
    assert len(kept) <= points
    assert kept == sorted(set(kept))  # strictly increasing
    if times and points:
        assert kept[-1] == times[-1]  # the newest sample is always kept (a clock set back drops what is "newer")
        assert kept[0] >= times[-1] - age


@given(st.lists(TIMES, max_size=60, unique=True), TIMES)
def test_since_returns_exactly_the_newer_samples(times: list[float], since: float) -> None:
    ring = HistoryRing(max_points=1000, max_age_s=1e7)
    ring.extend(_sample(t) for t in times)
    assert [s.t for s in ring.since(since)] == sorted(t for t in times if t > since)
    series = ring.as_json(since)["series"]
    assert set(series) == set(SERIES)
    assert [point[0] for point in series["faults"]] == sorted(t for t in times if t > since)


def test_a_sample_survives_its_record_and_a_bad_record_is_none() -> None:
    sample = Sample(1_700_000_000.5, dict.fromkeys(SERIES, 2.5) | {"kudos_per_kwh": None}, (0.25, 1.0))
    assert record_sample({"kind": "history_sample", **sample.fields()}) == sample
    for bad in ({"kind": "job_ended", "t": 1.0}, {"kind": "history_sample"}, {"kind": "history_sample", "t": "x"},
                {"kind": "history_sample", "t": float("inf")}, {"kind": "history_sample", "t": 10**400}):  # fmt: skip
        assert record_sample(bad) is None
    odd = record_sample({"kind": "history_sample", "t": 5, "kudos_per_hour": "many", "slots": [0.5, "x", True]})
    assert odd is not None and odd.values["kudos_per_hour"] is None and odd.slot_duty == (0.5,)


class WallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _sampler(parts: Parts, events: EventLog | None = None) -> tuple[HistorySampler, WallClock]:
    wall = WallClock()
    return HistorySampler(lambda: build_snapshot(parts.sources), parts.sources.history, events, wall), wall


def _advance(parts: Parts, wall: WallClock, seconds: float) -> None:
    parts.clock.now += seconds
    wall.now += seconds


async def test_the_sampler_turns_jobs_faults_and_the_queue_into_the_series(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    events = EventLog()
    sampler, wall = _sampler(parts, events)
    _advance(parts, wall, 60.0)
    # In the first minute: slot 0 ran two 15 s jobs (2 images each), one job dropped, two jobs wait.
    _finished_on_slot(parts, "a", slot=0, seconds=15.0, reward=20.0)
    _finished_on_slot(parts, "b", slot=0, seconds=15.0, reward=20.0)
    for key in ("run-0", "run-1", "late", "wait-0", "wait-1"):
        parts.pipeline.job_popped(_job(key), parts.clock.now)
    late = parts.pipeline.registry.get("late")
    assert late is not None
    parts.pipeline.drop(late, "its deadline passed before a slot was free")
    first = sampler.sample_now()
    values = first.values
    assert values["images_per_minute"] == 4.0
    assert values["faults"] == 1.0
    assert values["queue_depth"] == len(build_snapshot(parts.sources)["queue"]) > 0
    assert values["kudos_per_hour"] == build_snapshot(parts.sources)["totals"]["kudos_per_hour"] > 0
    assert values["kudos_per_kwh"] is None  # no GPU telemetry in this snapshot
    assert first.slot_duty == (0.5, 0.0)  # slot 0: 30 s of jobs over 60 s; both jobs running started just now
    assert values["slot_duty"] == sum(first.slot_duty) / len(first.slot_duty)
    # The next interval: nothing ends, so no new fault and no images in the faults' count.
    _advance(parts, wall, 30.0)
    second = sampler.sample_now()
    assert second.values["faults"] == 0.0
    assert second.values["images_per_minute"] == 4.0 * 60 / 90  # the window still holds the first minute
    assert second.slot_duty == (60 / 90, 30 / 90)  # the jobs running count up to the present
    recorded = [record_sample(event.as_json()) for event in events.of_kind("history_sample")]
    assert recorded == [first, second]
    assert [s.t for s in parts.sources.history.since()] == [first.t, second.t]


async def test_rates_cover_only_the_last_five_minutes(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    sampler, wall = _sampler(parts)
    _advance(parts, wall, 30.0)
    _finished_on_slot(parts, "early", slot=1, seconds=20.0, reward=5.0)
    sampler.sample_now()
    for _ in range(12):  # six minutes with nothing done
        _advance(parts, wall, 30.0)
        last = sampler.sample_now()
    assert last.values["images_per_minute"] == 0.0
    assert last.values["megapixelsteps_per_second"] == 0.0


async def test_history_json_serves_the_series_and_only_newer_points_with_since(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    sampler, wall = _sampler(parts)
    stamps = []
    for _ in range(3):
        _advance(parts, wall, 30.0)
        stamps.append(sampler.sample_now().t)
    async with TestClient(TestServer(dashboard_app(parts.sources, token=None))) as client:
        whole = await (await client.get("/history.json")).json()
        assert whole["interval_s"] == 30.0
        assert list(whole["series"]) == list(SERIES)
        assert [t for t, _ in whole["series"]["kudos_per_hour"]] == stamps
        assert [v for _, v in whole["series"]["kudos_per_kwh"]] == [None] * 3
        assert set(whole["slot_duty_by_slot"]) == {"0", "1"}
        newer = await (await client.get(f"/history.json?since={stamps[0]}")).json()
        assert [t for t, _ in newer["series"]["queue_depth"]] == stamps[1:]
        for bad in ("soon", "nan", "inf"):
            response = await client.get(f"/history.json?since={bad}")
            assert response.status == 400
            assert "unix seconds" in await response.text()


async def test_samples_come_every_interval_and_a_failed_one_is_skipped() -> None:
    events = EventLog()
    snapshots = iter([RuntimeError("a bug in a snapshot")])

    def snapshot() -> dict[str, object]:
        failure = next(snapshots, None)
        if failure is not None:
            raise failure
        slot = {"index": 0, "busy_s": 1.0}
        totals = {"images": 2, "megapixelsteps": 3.0, "faulted": 0, "dropped": 0, "kudos_per_hour": 60.0}
        return {"worker": {"uptime_s": 2.0}, "totals": totals, "slots": [slot], "queue": []}

    sampler = HistorySampler(snapshot, HistoryRing(interval_s=0.01), events)
    task = asyncio.create_task(sampler.sample_forever())
    try:
        await events.wait_for(lambda event: event.kind == "history_sample", timeout=10.0)
        await events.wait_for(lambda event: len(events.of_kind("history_sample")) == 2, timeout=10.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(sampler.ring) >= 2
    assert sampler.ring.since()[0].values["images_per_minute"] == 60.0
