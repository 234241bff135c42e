"""The pure scheduling policies, over hand-made snapshots."""

from __future__ import annotations

import pytest

from horde_worker_regen.scheduling.policy import (
    CapacitySnapshot,
    QueuedJob,
    StartDecision,
    expected_start_delay,
    next_job,
    pop_allowance,
    retry_delay,
    start_decision,
)


def snapshot(
    running: int = 0,
    waiting: int = 0,
    *,
    slots: int = 2,
    queue_size: int = 1,
    job_s: float = 1.0,
    accepting: bool = True,
) -> CapacitySnapshot:
    return CapacitySnapshot(slots, queue_size, running, waiting, job_s, accepting)


@pytest.mark.parametrize(
    ("running", "waiting", "allowance"),
    [(0, 0, 3), (1, 0, 2), (2, 0, 1), (2, 1, 0), (1, 2, 0), (0, 3, 0), (2, 2, 0)],
)
def test_pops_only_for_free_slots_and_queue_places(running: int, waiting: int, allowance: int) -> None:
    assert pop_allowance(snapshot(running, waiting)) == allowance


def test_no_pop_while_shutting_down() -> None:
    assert pop_allowance(snapshot(accepting=False)) == 0


def test_no_pop_for_a_job_that_would_wait_past_half_the_shortest_ttl() -> None:
    # Two slots busy with 100 s jobs and one job queued: a new one would start in ~100 s > 75 s.
    slow = snapshot(running=2, waiting=0, queue_size=2, job_s=100.0)
    assert expected_start_delay(slow) == pytest.approx(50.0)
    assert pop_allowance(slow) == 2  # re-evaluated after each pop
    slower = snapshot(running=2, waiting=1, queue_size=2, job_s=100.0)
    assert expected_start_delay(slower) == pytest.approx(100.0)
    assert pop_allowance(slower) == 0


def test_a_job_starts_only_if_it_can_finish_before_its_deadline() -> None:
    assert start_decision(now=100.0, deadline=250.0, expected_job_seconds=10.0) is StartDecision.RUN
    assert start_decision(now=245.0, deadline=250.0, expected_job_seconds=10.0) is StartDecision.FAULT
    assert start_decision(now=250.0, deadline=250.0, expected_job_seconds=10.0) is StartDecision.DROP


def test_earliest_deadline_first_then_earliest_pop() -> None:
    jobs = [QueuedJob("a", 300.0, 1.0), QueuedJob("b", 200.0, 3.0), QueuedJob("c", 200.0, 2.0)]
    assert next_job(jobs) == jobs[2]
    assert next_job([]) is None


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [retry_delay(n, base=0.5, cap=3.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
