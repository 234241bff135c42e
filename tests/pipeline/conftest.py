"""Fixtures of the pipeline tests."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import pytest

from horde_worker_regen.localhorde import jobs as horde_jobs
from horde_worker_regen.localhorde import submit as horde_submit

CONDITION_TIMEOUT_S = 120.0


class SubmitCounter(collections.Counter[str]):
    """How many submits the local horde received per job id, and a way to wait for a state they lead to."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """The horde's state changed through a submit: wake whoever waits on it."""
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = CONDITION_TIMEOUT_S) -> None:
        """Wait until `condition` holds, checked now and after each submit the horde applies."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def submit_counter(monkeypatch: pytest.MonkeyPatch) -> SubmitCounter:
    """How many submits the local horde received per job id (its submit handler, wrapped)."""
    counts = SubmitCounter()
    original: Callable[..., float] = horde_jobs.set_generation

    def counting(state: Any, reference: Any, pg: Any, submission: Any) -> float:
        counts[pg.id] += 1
        try:
            return original(state, reference, pg, submission)
        finally:
            counts.changed()

    monkeypatch.setattr(horde_submit, "set_generation", counting)
    return counts
