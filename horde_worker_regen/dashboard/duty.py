"""Slot duty: the share of the worker's uptime each slot spent running jobs.

Busy seconds of finished jobs are summed per slot by `WorkerStats` as each job ends, so a snapshot
costs the same after a million jobs as after ten; the job a slot runs now counts up to the present.
"""

from __future__ import annotations

from horde_worker_regen.pipeline.stats import WorkerStats


class SlotDuty:
    """Busy time per slot, from the inference children's own job timings."""

    def __init__(self, stats: WorkerStats) -> None:
        self._stats = stats

    def busy_seconds(self, slot: int) -> float:
        """Seconds slot `slot` spent on jobs that have ended."""
        return self._stats.slot_busy_seconds.get(slot, 0.0)

    def duty(self, slot: int, running_for: float, uptime: float) -> float:
        """Busy time / uptime for `slot`, counting `running_for` seconds of the job it runs now."""
        if uptime <= 0:
            return 0.0
        return min(1.0, (self.busy_seconds(slot) + running_for) / uptime)
