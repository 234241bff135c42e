"""When an inference child is recycled (restarted between jobs): after N jobs, or above an RSS size.

Long-lived inference processes grow (fragmented allocators, caches, leaks in native code); a fresh
process gives the memory back. The parent measures the child's resident memory itself, with psutil
on the child's pid, so a wedged or lying child cannot hide its size.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from horde_worker_regen.config.bridge_data import BridgeData

MIB = 1024 * 1024


@dataclass(frozen=True)
class RecyclePolicy:
    """`recycle_process_after_jobs` and `recycle_process_above_rss_mib` (0: that rule is off)."""

    after_jobs: int = 0
    above_rss_mib: int = 0

    @classmethod
    def from_bridge_data(cls, data: BridgeData) -> RecyclePolicy:
        """The policy the operator configured."""
        return cls(data.recycle_process_after_jobs, data.recycle_process_above_rss_mib)

    def reason(self, jobs_run: int, pid: int | None) -> str | None:
        """Why a child that has run `jobs_run` jobs should be recycled now, or None."""
        if self.after_jobs and jobs_run >= self.after_jobs:
            return f"it has run {jobs_run} jobs (recycle_process_after_jobs: {self.after_jobs})"
        if self.above_rss_mib and pid is not None:
            rss = resident_mib(pid)
            if rss is not None and rss > self.above_rss_mib:
                return f"its memory is {rss:.0f} MiB (recycle_process_above_rss_mib: {self.above_rss_mib})"
        return None


def resident_mib(pid: int) -> float | None:
    """The resident memory of process `pid` in MiB; None if it is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / MIB
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
