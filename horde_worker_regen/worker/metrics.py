"""The metrics file `run --metrics-file` writes at exit: every job's timings and the main process's cost.

Used by the pipeline benchmark (`bench/pipeline_bench.py`). Job times are on the monotonic clock;
`started_at`/`finished_at` are stamped by the inference child, the others by the main process.
CPU and RSS are the main process's own (children excluded).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

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


def _kudos(stats: WorkerStats) -> dict[str, Any]:
    """The worker's estimate, the bridge factor in it, and what the horde credited (None if never read)."""
    snapshot = stats.snapshot()
    credited = snapshot.kudos_credited
    return {
        "estimated": snapshot.kudos_session,
        "rewards": stats.kudos,
        "bridge_factor": snapshot.kudos_factor,
        "credited": None
        if credited is None
        else {"total": credited.total, "jobs": credited.jobs, "uptime": credited.uptime},
    }


def write_metrics(path: Path, stats: WorkerStats, slots: int, at_start: dict[str, Any]) -> None:
    """Write the metrics JSON file (`at_start`: `process_figures()` when the worker began serving)."""
    payload = {
        "slots": slots,
        "started_at": stats.started,
        "ended_at": time.monotonic(),
        "process_at_start": at_start,
        "process": process_figures(),
        "jobs": stats.timings_as_dicts(),
        "kudos": _kudos(stats),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")
