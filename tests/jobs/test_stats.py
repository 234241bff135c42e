"""Kudos and speed statistics, and the status line built from them."""

from __future__ import annotations

import pytest

from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.status.console import format_duration, format_status
from tests.jobs.test_record import make_record


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _ended(stats: WorkerStats, clock: Clock, state: JobState, reward: float, key: str) -> None:
    record = make_record(key, images=2)
    record.state = state
    record.started_at, record.finished_at = clock.now - 2.0, clock.now
    outcome = {JobState.SUBMITTED: IdOutcome.SUBMITTED, JobState.FAULTED: IdOutcome.FAULTED}.get(
        state, IdOutcome.DROPPED
    )
    record.results = {0: IdResult(outcome, reward), 1: IdResult(outcome, 0.0)}
    stats.job_ended(record)


def test_rewards_rates_and_idle_time() -> None:
    clock = Clock()
    stats = WorkerStats(clock=clock)
    clock.now = 10.0  # idle for the first 10 s
    stats.set_in_flight(True)
    clock.now = 40.0
    _ended(stats, clock, JobState.SUBMITTED, 12.0, "a")
    _ended(stats, clock, JobState.FAULTED, 0.0, "b")
    stats.set_in_flight(False)
    clock.now = 60.0
    snapshot = stats.snapshot()
    assert (snapshot.jobs, snapshot.images, snapshot.faulted, snapshot.dropped) == (1, 2, 1, 0)
    assert snapshot.kudos_session == 12.0
    assert snapshot.kudos_per_hour == pytest.approx(12.0 * 3600 / 60)
    assert snapshot.jobs_per_hour == pytest.approx(60.0)
    assert snapshot.idle_seconds == pytest.approx(10.0 + 20.0)
    assert snapshot.megapixelsteps_per_second == pytest.approx(512 * 768 * 30 * 2 / 1e6 / 60)


def test_the_expected_job_duration_follows_measured_jobs() -> None:
    clock = Clock()
    stats = WorkerStats(clock=clock)
    before = stats.expected_job_seconds
    for index in range(20):
        clock.now += 2.0
        _ended(stats, clock, JobState.SUBMITTED, 1.0, f"j{index}")
    assert before > 2.0 and stats.expected_job_seconds == pytest.approx(2.0, abs=0.1)


def test_the_status_line_is_one_compact_line() -> None:
    clock = Clock()
    stats = WorkerStats(clock=clock)
    stats.set_in_flight(True)
    clock.now = 30.0
    _ended(stats, clock, JobState.SUBMITTED, 12.5, "a")
    stats.set_in_flight(False)
    clock.now = 3725.0  # the reward is now more than an hour old
    line = format_status(stats.snapshot(), slots_busy=1, slots=2, waiting=1)
    assert "\n" not in line
    for part in (
        "1 jobs",
        "2 images",
        "kudos 12.5 est., credited not read yet, 0/hr",
        "MPS/s",
        "jobs/hr",
        "idle 1:01:35",
        "slots 1/2 busy, 1 waiting",
        "up 1:02:05",
    ):
        assert part in line
    assert format_duration(59.9) == "0:00:59"


def test_busy_seconds_add_up_per_slot() -> None:
    clock = Clock()
    stats = WorkerStats(clock=clock)
    for slot in (0, 1, 1):
        record = make_record(f"j{clock.now}", images=1)
        record.state, record.slot = JobState.SUBMITTED, slot
        clock.now += 3.0
        record.started_at, record.finished_at = clock.now - 2.5, clock.now
        record.results = {0: IdResult(IdOutcome.SUBMITTED, 1.0)}
        stats.job_ended(record)
    assert dict(stats.slot_busy_seconds) == {0: pytest.approx(2.5), 1: pytest.approx(5.0)}
