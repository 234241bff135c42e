"""The dashboard's history while the worker serves: read back at start, a sample every interval, each one kept.

At start the ring gets the last 24 hours the history file holds (`logs/history.jsonl`, what earlier
runs sampled; read and rewritten in a thread, the loop serving meanwhile); then `HistorySampler` takes
a sample of the dashboard snapshot every 30 s, which the event log hands to the history file (and to
the metrics file, with `--metrics-file`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from horde_worker_regen.dashboard.sampler import HistorySampler
from horde_worker_regen.dashboard.snapshot import DashboardSources, build_snapshot
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.worker.history_file import HISTORY_FILE, HistoryFile, read_history


class HistoryService:
    """Fills `sources.history` and keeps it in the history file, until stopped."""

    def __init__(
        self, sources: DashboardSources, events: EventLog, file: HistoryFile, wall_clock: Callable[[], float]
    ) -> None:
        """Sampling into the ring and `file` (which holds what the ring was filled with): see `start`."""
        self.file = file
        events.add_sink(file)
        self.sampler = HistorySampler(lambda: build_snapshot(sources), sources.history, events, wall_clock)
        self._task = asyncio.create_task(self.sampler.sample_forever(), name="history")

    @classmethod
    async def start(
        cls, sources: DashboardSources, events: EventLog, logs_dir: Path, wall_clock: Callable[[], float] = time.time
    ) -> HistoryService:
        """The ring filled from the history file and the file rewritten (both in a thread), then sampling."""
        ring = sources.history
        path = logs_dir / HISTORY_FILE
        kept = await asyncio.to_thread(read_history, path, wall_clock(), ring.max_age_s, ring.max_points)
        ring.extend(kept)
        return cls(sources, events, await HistoryFile.start(path, kept, ring.max_points), wall_clock)

    async def stop(self) -> None:
        """No more samples; the file is closed."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.file.close()
