"""Kudos and speed statistics: totals, kudos/hr, MPS/s, jobs/hr, idle time, busy seconds per slot.

Fed by the pipeline when a job ends; read by the status line, the dashboard and the last record of the
event log. Only running totals are kept, so a worker serving for weeks does not grow; each job's own
timings are in its `job_ended` event. Timings are on the monotonic clock; `started_at`/`finished_at`
are the inference child's own timestamps. Kudos are the worker's estimate (each submit's reward times
the horde's bridge factor for the capability level claimed when it ended, `kudos_factor`: the level
may rise while the worker runs) beside what the horde says it credited (`credited`, set by
`horde.credit.CreditWatch`).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.jobs.record import JobRecord, JobState

KUDOS_WINDOW_S = 3600.0
# Weight of the newest job in the running average of job duration.
DURATION_SMOOTHING = 0.2
INITIAL_JOB_SECONDS = 10.0
RECENT_JOBS_KEPT = 50


@dataclass(frozen=True)
class EndedJob:
    """A job that ended, kept for the operator's views (`at` is wall-clock time; `reason` when not submitted)."""

    at: float
    job_key: str
    model: str
    images: int
    state: str
    kudos: float
    seconds: float | None
    reason: str | None


@dataclass(frozen=True)
class StatsSnapshot:
    """The figures of one status line."""

    uptime: float
    jobs: int
    images: int
    faulted: int
    dropped: int
    kudos_session: float
    kudos_per_hour: float
    megapixelsteps_per_second: float
    jobs_per_hour: float
    idle_seconds: float
    kudos_factor: float = 1.0  # the bridge factor of the level claimed now (each reward has its own applied)
    kudos_credited: Credited | None = None  # what the horde credited this run, when it was last read
    bridge_level: int | None = None  # the capability level the bridge agent claims now (None: not decided yet)
    bridge_reason: str = ""  # why that level, in words


class WorkerStats:
    """Accumulates what the worker did since it started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, kudos_factor: float = 1.0) -> None:
        self._clock = clock
        self.started = clock()
        self.jobs = self.images = self.faulted = self.dropped = 0
        self.kudos = 0.0  # submit rewards, before the bridge factor
        self._kudos_paid = 0.0  # each reward times the factor of its time
        self.megapixelsteps = 0.0
        self.expected_job_seconds = INITIAL_JOB_SECONDS
        self.slot_busy_seconds: dict[int, float] = defaultdict(float)
        self._rewards: deque[tuple[float, float]] = deque()
        self.recent_jobs: deque[EndedJob] = deque(maxlen=RECENT_JOBS_KEPT)
        self._idle_total = 0.0
        self._idle_since: float | None = self.started
        self.kudos_factor = kudos_factor
        self.bridge_level: int | None = None
        self.bridge_reason = ""
        self.credited: Credited | None = None

    def claim_level(self, level: int, kudos_factor: float, reason: str) -> None:
        """The bridge agent claims `level` from now on: later rewards are paid `kudos_factor` times."""
        self.bridge_level, self.kudos_factor, self.bridge_reason = level, kudos_factor, reason

    def job_ended(self, record: JobRecord) -> None:
        """Count a job that reached its terminal state."""
        now = self._clock()
        reward = record.reward
        if record.state is JobState.SUBMITTED:
            self.jobs += 1
            self.images += len(record.ids)
            self.megapixelsteps += record.megapixelsteps
        elif record.state is JobState.FAULTED:
            self.faulted += 1
        else:
            self.dropped += 1
        self._remember(record)
        self.kudos += reward
        self._kudos_paid += reward * self.kudos_factor
        self._rewards.append((now, reward * self.kudos_factor))
        if record.started_at is not None and record.finished_at is not None:
            duration = record.finished_at - record.started_at
            self.expected_job_seconds += DURATION_SMOOTHING * (duration - self.expected_job_seconds)
            if record.slot is not None:
                self.slot_busy_seconds[record.slot] += max(0.0, duration)

    def _remember(self, record: JobRecord) -> None:
        seconds = None
        if record.started_at is not None and record.finished_at is not None:
            seconds = max(0.0, record.finished_at - record.started_at)
        reasons = [result.reason for result in record.results.values() if result.reason]
        reason = record.fault_reason or (reasons[0] if reasons else None)
        self.recent_jobs.append(EndedJob(time.time(), record.key, record.spec.model, len(record.ids),
                                         record.state.value, record.reward, seconds,
                                         None if record.state is JobState.SUBMITTED else reason))  # fmt: skip

    def set_in_flight(self, in_flight: bool) -> None:
        """Track time with no job at all in the worker (idle: nothing popped is being worked on)."""
        now = self._clock()
        if in_flight and self._idle_since is not None:
            self._idle_total += now - self._idle_since
            self._idle_since = None
        elif not in_flight and self._idle_since is None:
            self._idle_since = now

    def kudos_last_hour(self) -> float:
        """Rewards of the submits of the last hour, each times its bridge factor."""
        horizon = self._clock() - KUDOS_WINDOW_S
        while self._rewards and self._rewards[0][0] < horizon:
            self._rewards.popleft()
        return sum(reward for _, reward in self._rewards)

    def snapshot(self) -> StatsSnapshot:
        """The current figures."""
        now = self._clock()
        uptime = max(now - self.started, 1e-6)
        idle = self._idle_total + (now - self._idle_since if self._idle_since is not None else 0.0)
        per_hour = KUDOS_WINDOW_S / min(uptime, KUDOS_WINDOW_S)
        return StatsSnapshot(
            uptime=uptime, jobs=self.jobs, images=self.images, faulted=self.faulted, dropped=self.dropped,
            kudos_session=self._kudos_paid,
            kudos_per_hour=self.kudos_last_hour() * per_hour,
            megapixelsteps_per_second=self.megapixelsteps / uptime, jobs_per_hour=self.jobs * 3600.0 / uptime,
            idle_seconds=idle, kudos_factor=self.kudos_factor, kudos_credited=self.credited,
            bridge_level=self.bridge_level, bridge_reason=self.bridge_reason,
        )  # fmt: skip
