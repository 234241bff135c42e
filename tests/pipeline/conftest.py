"""Fixtures of the pipeline tests."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest

from horde_worker_regen.localhorde import jobs as horde_jobs
from horde_worker_regen.localhorde import submit as horde_submit


@pytest.fixture
def submit_counter(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """How many submits the local horde received per job id (its submit handler, wrapped)."""
    counts: collections.Counter[str] = collections.Counter()
    original: Callable[..., float] = horde_jobs.set_generation

    def counting(state: Any, reference: Any, pg: Any, submission: Any) -> float:
        counts[pg.id] += 1
        return original(state, reference, pg, submission)

    monkeypatch.setattr(horde_submit, "set_generation", counting)
    return counts
