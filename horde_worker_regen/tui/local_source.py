"""The worker in this same process (`run --tui`): its snapshot read directly, no HTTP, no port.

The snapshot is the dashboard's own (`build_snapshot`) and the history its ring, so the terminal UI
shows what the web page shows whether the dashboard is enabled or not. Until the worker serves
(start-up checks, children starting) there is no snapshot yet: that is said, not treated as a lost
connection.
"""

from __future__ import annotations

from collections.abc import Callable

from horde_worker_regen.dashboard.snapshot import DashboardSources, build_snapshot
from horde_worker_regen.tui.source import History, Snapshot, StatusUnavailable


class WorkerStarting(StatusUnavailable):
    """The worker in this process is still starting: nothing to show but its log."""


class LocalStatusSource:
    """Reads the live parts of the worker running in this process (None until it serves)."""

    def __init__(self, sources: Callable[[], DashboardSources | None]) -> None:
        self._sources = sources

    @property
    def describe(self) -> str:
        return "this process"

    def _live(self) -> DashboardSources:
        sources = self._sources()
        if sources is None:
            raise WorkerStarting("the worker is starting")
        return sources

    async def status(self) -> Snapshot:
        return build_snapshot(self._live())

    async def history(self, since: float | None) -> History | None:
        return self._live().history.as_json(since)  # the ring /history.json serves

    async def set_paused(self, paused: bool) -> bool:
        popper = self._live().popper
        if paused:
            popper.pause()
        else:
            popper.resume()
        return popper.paused

    async def close(self) -> None:
        return None
