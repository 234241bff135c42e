"""A worker's live parts without child processes: a real pipeline, popper, statistics and model downloads.

The children run in this process (`InProcessChildren`, the fake backends) and the inference children hold
their jobs, so a test puts jobs on slots and reports their progress as the children would; every child
started for a test is killed after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.models.background import ModelDownloads
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes.in_process import InProcessChildren
from tests.horde.inprocess_worker import build_pipeline

MODEL = "Deliberate"
LIVENESS_S = 30.0
# The children started by `build_parts` during the current test (killed after it).
_STARTED: list[InProcessChildren] = []


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Parts:
    """What a dashboard reads, and the clock they share."""

    sources: DashboardSources
    pipeline: Pipeline
    stats: WorkerStats
    popper: Popper
    clock: Clock


async def build_parts(
    session: aiohttp.ClientSession, data: BridgeData, slots: int = 2, horde_url: str = "http://127.0.0.1:9/api/"
) -> Parts:
    """Real pipeline (its children started and holding their jobs), popper, statistics and downloads on
    one test clock; nothing pops."""
    clock = Clock()
    stats = WorkerStats(clock=clock)
    client = HordeClient(session, horde_url, data.api_key.get_secret_value())
    children = InProcessChildren(liveness_timeout=LIVENESS_S)
    _STARTED.append(children)
    # The children run in this process: the fake backends, whatever `data` says.
    in_process = data.model_copy(update={"inference_backend": "fake", "safety_backend": "fake"})
    pipeline = build_pipeline(in_process, children, client, slots=slots, stats=stats, clock=clock,
                              retry_sleep=asyncio.sleep)  # fmt: skip
    await pipeline.start_children()
    for slot in pipeline.slots.slots:
        assert slot.handle is not None
        children.hold(slot.handle)
    popper = Popper(
        client,
        build_pop_request(data, [MODEL], bridge_agent(1)),
        pipeline,
        stats,
        PopperSettings(slots, data.queue_size),
        on_stop=lambda reason, code: None,
        clock=clock,
    )
    downloads = ModelDownloads(data, [MODEL], Downloader(session), fetch_files=False)
    sources = DashboardSources(data, stats, pipeline, popper, downloads, clock=clock)
    return Parts(sources, pipeline, stats, popper, clock)


@pytest_asyncio.fixture(autouse=True)
async def _kill_started_children() -> AsyncIterator[None]:
    yield
    while _STARTED:
        await _STARTED.pop().kill_all()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session
