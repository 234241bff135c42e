"""Slot duty: the share of the worker's uptime each slot spent running jobs.

Finished jobs are read once each from `WorkerStats.timings` (append-only), so a snapshot costs the
same after a million jobs as after ten; the job a slot runs now counts up to the present moment.
"""

from __future__ import annotations

from collections import defaultdict

from horde_worker_regen.jobs.stats import WorkerStats


class SlotDuty:
    """Accumulated busy seconds per slot, from the inference children's own job timings."""

    def __init__(self, stats: WorkerStats) -> None:
        self._stats = stats
        self._seen = 0
        self._busy: dict[int, float] = defaultdict(float)

    def busy_seconds(self, slot: int) -> float:
        """Seconds slot `slot` spent on jobs that have ended."""
        self._catch_up()
        return self._busy[slot]

    def duty(self, slot: int, running_for: float, uptime: float) -> float:
        """Busy time / uptime for `slot`, counting `running_for` seconds of the job it runs now."""
        if uptime <= 0:
            return 0.0
        return min(1.0, (self.busy_seconds(slot) + running_for) / uptime)

    def _catch_up(self) -> None:
        timings = self._stats.timings
        for timing in timings[self._seen:]:
            if timing.slot is not None and timing.started_at is not None and timing.finished_at is not None:
                self._busy[timing.slot] += max(0.0, timing.finished_at - timing.started_at)
        self._seen = len(timings)
