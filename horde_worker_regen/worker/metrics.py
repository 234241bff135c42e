"""The figures the first and last records of the event log carry: the main process's cost, the kudos (alchemy's too).

CPU and RSS are the main process's own (children excluded); `worker_started` carries them as serving
begins, `worker_stopped` at exit, so the difference is what serving cost.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from horde_worker_regen.pipeline.alchemy.stats import AlchemyStats
from horde_worker_regen.pipeline.stats import WorkerStats


def process_figures() -> dict[str, Any]:
    """CPU seconds, current and peak RSS of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0
    try:
        import psutil

        rss = psutil.Process(os.getpid()).memory_info().rss
    except ImportError:  # psutil is a dependency; stay usable without it
        pass
    return {
        "cpu_user_s": usage.ru_utime,
        "cpu_system_s": usage.ru_stime,
        "max_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "rss_bytes": rss,
    }


def kudos_figures(stats: WorkerStats, alchemy: AlchemyStats | None = None) -> dict[str, Any]:
    """The worker's estimate, the bridge level claimed at the end and its factor, and what the horde credited
    (None if never read); with the alchemist, its forms and kudos by form (paid without the bridge factor)."""
    snapshot = stats.snapshot()
    credited = snapshot.kudos_credited
    return {
        "estimated": snapshot.kudos_session,
        "rewards": stats.kudos,
        "bridge_factor": snapshot.kudos_factor,
        "bridge_level": snapshot.bridge_level,
        "credited": None
        if credited is None
        else {"total": credited.total, "jobs": credited.jobs, "uptime": credited.uptime},
        "alchemy": None if alchemy is None else alchemy.figures().as_json(),
    }
