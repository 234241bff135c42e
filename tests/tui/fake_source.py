"""A status source that answers a fixed snapshot and history: the view's test double for parts not merged
into this worker's snapshot yet (identity, telemetry) or for a screenshot with a full day's figures."""

from __future__ import annotations

import copy

from horde_worker_regen.tui.source import History, Snapshot


class FakeStatusSource:
    """Answers `snapshot` and `history` (None: the worker keeps none); records pause switches."""

    def __init__(self, snapshot: Snapshot, history: History | None = None) -> None:
        self.snapshot = snapshot
        self._history = history

    @property
    def describe(self) -> str:
        return "http://127.0.0.1:7070/"

    async def status(self) -> Snapshot:
        return copy.deepcopy(self.snapshot)

    async def history(self, since: float | None) -> History | None:
        return self._history

    async def set_paused(self, paused: bool) -> bool:
        self.snapshot["worker"]["paused"] = paused
        return paused

    async def close(self) -> None:
        return None
