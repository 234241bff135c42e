"""A worker's live parts without child processes: a real pipeline, popper, statistics and model downloads.

The supervisor is the stub the pipeline tests use (every slot "up", messages recorded), so jobs can
be put on slots and progress reported exactly as the inference children would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.models.background import ModelDownloads
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes.supervisor import ChildSpec
from tests.jobs.test_pipeline_intake import StubHandle, StubSupervisor, slot_up

MODEL = "Deliberate"


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


def build_parts(
    session: aiohttp.ClientSession, data: BridgeData, slots: int = 2, horde_url: str = "http://127.0.0.1:9/api/"
) -> Parts:
    """Real pipeline, popper, statistics and downloads on one test clock; nothing is started."""
    clock = Clock()
    stats = WorkerStats(clock=clock)
    spec = ChildSpec("stub", print, None)
    services = PipelineServices(
        supervisor=StubSupervisor(),  # type: ignore[arg-type]
        registry=JobRegistry(clock),
        stats=stats,
        submitter=None,  # type: ignore[arg-type]
        fetcher=None,  # type: ignore[arg-type]
        clock=clock,
    )
    pipeline = Pipeline(
        PipelineSettings.from_bridge_data(data), services, ChildSpecs(spec, [spec] * slots), on_fatal=print
    )
    for slot in pipeline.slots.slots:
        slot_up(slot, StubHandle(f"inference-{slot.index}"))
    client = HordeClient(session, horde_url, data.api_key.get_secret_value())
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


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session
