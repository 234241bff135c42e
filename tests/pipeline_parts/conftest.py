"""The child client the pipeline's parts are tested over: `InProcessChildren`, every child played by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from horde_worker_regen.processes import restarts
from horde_worker_regen.processes.in_process import InProcessChildren
from tests.pipeline_parts.children import played_children


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restart attempts follow each other at once: what is tested is the give-up, not the pacing."""
    monkeypatch.setattr(restarts, "RESTART_BACKOFF_BASE_S", 0.0)


@pytest_asyncio.fixture
async def children() -> AsyncIterator[InProcessChildren]:
    """Children held from their start; every one still running is killed at the end of the test."""
    client = played_children()
    yield client
    await client.kill_all()
