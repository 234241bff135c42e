"""What the operator watches a serving worker through, started and stopped together.

The telemetry and the horde's word on this worker (`OperatorView`), the history ring and its file
(`HistoryService`), the dashboard (when enabled and its port is free) and the last-status file all
read the one `DashboardSources`; `run --tui` reads it too. Stopping them is the orchestrator's last
step of serving: the dashboard answers until then, and the last-status file holds the final state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.server import DashboardServer, start_dashboard
from horde_worker_regen.dashboard.snapshot import DashboardSources, build_snapshot
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.worker.history_service import HistoryService
from horde_worker_regen.worker.operator_view import NvmlSource, OperatorView
from horde_worker_regen.worker.status_file import LAST_STATUS_FILE, LastStatusFile


@dataclass
class OperatorSurfaces:
    """The live views of one serving run."""

    sources: DashboardSources
    view: OperatorView
    history: HistoryService
    status_file: LastStatusFile
    dashboard: DashboardServer | None

    @classmethod
    async def start(
        cls,
        data: BridgeData,
        *,
        client: HordeClient,
        nvml: NvmlSource,
        sources_for: Callable[[OperatorView], DashboardSources],
        events: EventLog,
        logs_dir: Path,
        used_gpus: frozenset[int] = frozenset(),
    ) -> OperatorSurfaces:
        """The telemetry and identity first (the sources read them), then the history (its ring is filled
        before the page can ask), the last-status file and the dashboard. A part that fails to start stops
        those started before it; `used_gpus` are the GPUs whose energy counts (those the slots run on)."""
        async with contextlib.AsyncExitStack() as started:
            view = OperatorView.start(data, client, nvml, used_gpus)
            started.push_async_callback(view.stop)
            sources = sources_for(view)
            history = await HistoryService.start(sources, events, logs_dir)
            started.push_async_callback(history.stop)
            status_file = LastStatusFile(logs_dir / LAST_STATUS_FILE, lambda: build_snapshot(sources))
            started.push_async_callback(status_file.stop)
            dashboard = await start_dashboard(data, sources)
            started.pop_all()  # all up: stopping them is `stop`'s now
        return cls(sources, view, history, status_file, dashboard)

    async def stop(self) -> None:
        """Everything stopped, the dashboard last but for the final snapshot written after it."""
        await self.view.stop()
        if self.dashboard is not None:
            await self.dashboard.stop()
        await self.history.stop()
        await self.status_file.stop()
