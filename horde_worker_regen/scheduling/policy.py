"""Pure scheduling policies over a snapshot of the pipeline: how much to pop, what runs next, where.

No I/O and no clocks here: callers pass `now` and the figures they measured, and tests call these
functions directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

# The shortest ttl the horde gives (horde-api.md §3.5): a job popped now must be able to start well
# within it, or popping it only earns an abort.
MIN_TTL_S = 150.0
START_MARGIN = 0.5


@dataclass(frozen=True)
class CapacitySnapshot:
    """What the pop decision looks at."""

    slots: int
    queue_size: int
    running: int
    waiting: int
    expected_job_seconds: float
    accepting: bool = True


def pop_allowance(snapshot: CapacitySnapshot) -> int:
    """How many jobs may be popped now: free slots plus `queue_size` places, minus jobs already waiting.

    Zero while shutting down, and zero when a new job would probably not start within half of the
    shortest ttl (slow jobs and a long queue).
    """
    if not snapshot.accepting:
        return 0
    free = snapshot.slots + snapshot.queue_size - snapshot.running - snapshot.waiting
    if free <= 0:
        return 0
    if expected_start_delay(snapshot) > MIN_TTL_S * START_MARGIN:
        return 0
    return free


def expected_start_delay(snapshot: CapacitySnapshot) -> float:
    """Seconds until a job popped now would start, if slots free at the average job duration."""
    ahead = snapshot.running + snapshot.waiting
    rounds = max(0, ahead - snapshot.slots + 1)
    return rounds * snapshot.expected_job_seconds / max(1, snapshot.slots)


# Idle pacing (horde-api.md §3.1): the server allows 60 pops/s per IP and the official worker pops
# every second when idle. Right after work the next request is likely close behind (a requester
# sending one image after another), so pops come faster for a while; after a long quiet spell they
# slow down, sparing the horde scans that find nothing.
HOT_WINDOW_S = 60.0
HOT_POP_DIVISOR = 4.0
HOT_POP_MIN_S = 0.2
LONG_IDLE_S = 600.0
LONG_IDLE_FACTOR = 2.0


def idle_pop_delay(interval: float, since_last_job: float, *, had_job: bool) -> float:
    """Seconds between the start of an empty pop and the next one.

    `interval` is the operator's `idle_pop_interval` (at least 0.5 s, as the configuration enforces);
    `since_last_job` is how long ago the last job arrived (or the popper started, with `had_job`
    False). Within `HOT_WINDOW_S` of a job the worker pops `HOT_POP_DIVISOR` times as often, but not
    more often than every `HOT_POP_MIN_S`; after `LONG_IDLE_S` without one, `LONG_IDLE_FACTOR` times
    less often.
    """
    if had_job and since_last_job < HOT_WINDOW_S:
        return max(min(HOT_POP_MIN_S, interval), interval / HOT_POP_DIVISOR)
    if since_last_job < LONG_IDLE_S:
        return interval
    return interval * LONG_IDLE_FACTOR


class StartDecision(Enum):
    """What to do with the next queued job when a slot is free."""

    RUN = "run"
    FAULT = "fault"  # it cannot finish in time: report it faulted so the horde re-queues it now
    DROP = "drop"  # its deadline has passed: the horde aborts it by itself


def start_decision(now: float, deadline: float, expected_job_seconds: float) -> StartDecision:
    """Run a job only if it can be generated and reported before its deadline."""
    if now >= deadline:
        return StartDecision.DROP
    if now + expected_job_seconds > deadline:
        return StartDecision.FAULT
    return StartDecision.RUN


@dataclass(frozen=True)
class QueuedJob:
    """A job ready to run: its key, deadline and pop order."""

    key: str
    deadline: float
    popped_at: float


def next_job(queued: Sequence[QueuedJob]) -> QueuedJob | None:
    """Earliest deadline first; among equal deadlines, the earliest pop."""
    if not queued:
        return None
    return min(queued, key=lambda job: (job.deadline, job.popped_at))


def retry_delay(attempt: int, base: float = 0.5, cap: float = 30.0, jitter: float = 1.0) -> float:
    """Exponential backoff: base · 2^attempt seconds, at most `cap`, times `jitter`.

    `jitter` is a factor the caller draws (e.g. uniform in [0.5, 1]), so that the retries of many ids
    failed by one outage spread out instead of arriving together.
    """
    return float(min(cap, base * 2.0 ** min(attempt, 64)) * jitter)
