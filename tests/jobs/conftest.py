"""A local horde with a fake clock, a horde client on it, a way to pop one real job, and pipelines whose
children run in this process (`InProcessChildren`), reporting to that horde."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pytest_asyncio
from PIL import Image

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import PoppedJob, bridge_agent, build_pop_request, parse_pop_answer
from horde_worker_regen.jobs.record import JobRecord
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.processes.in_process import InProcessChildren
from tests.horde.inprocess_worker import build_pipeline
from tests.worker_support import MODEL, queue

LIVENESS_S = 30.0
ABORT_GRACE_S = 10.0


@dataclass
class HordeSession:
    """A running local horde (fake clock), an owner, a requester and a client for the owner."""

    horde: RunningLocalHorde
    owner: User
    requester: User
    client: HordeClient
    session: aiohttp.ClientSession

    async def pop_record(self, prompt: str = "a fox", popped_at: float = 1000.0, **params: Any) -> JobRecord:
        """Queue one request, pop it as a worker would and wrap it in a fresh record."""
        queue(self.horde, self.requester, prompt, **params)
        data = BridgeData(
            api_key=self.owner.api_key,
            dreamer_name="Unit Dreamer",
            horde_url=self.horde.api_url,
            max_batch=4,
            max_power=64,
        )
        answer = parse_pop_answer(await self.client.pop(build_pop_request(data, [MODEL], bridge_agent(1))))
        assert isinstance(answer, PoppedJob)
        return JobRecord.from_pop(answer, popped_at)


@pytest_asyncio.fixture
async def horde_session() -> AsyncIterator[HordeSession]:
    config = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)
    async with serve_local_horde(config, clock=FakeClock()) as horde, aiohttp.ClientSession() as session:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        yield HordeSession(horde, owner, requester, HordeClient(session, horde.api_url, owner.api_key), session)


def webp_bytes(width: int = 64, height: int = 64, colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    """A small valid WebP image."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "WEBP")
    return buffer.getvalue()


class RecordingSleep:
    """An injectable `sleep` that returns at once and remembers what was asked."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class PipelineFactory(Protocol):
    """Makes a started pipeline (see `pipelines`)."""

    def __call__(
        self, slots: int = 1, *, hold: bool = False, loras: LoraFetcher | None = None, **settings: Any
    ) -> Awaitable[tuple[Pipeline, InProcessChildren]]: ...


@pytest_asyncio.fixture
async def pipelines(horde_session: HordeSession) -> AsyncIterator[PipelineFactory]:
    """Started pipelines with the fake backends in this process, reporting to the local horde.

    `settings` are the worker's; with `hold`, the inference children take their jobs but start none, so
    that the test plays them (`InProcessChildren.say`). Each is aborted at the end, as by a second signal."""
    made: list[Pipeline] = []

    async def make(
        slots: int = 1, *, hold: bool = False, loras: LoraFetcher | None = None, **settings: Any
    ) -> tuple[Pipeline, InProcessChildren]:
        data = BridgeData(
            api_key=horde_session.owner.api_key,
            horde_url=horde_session.horde.api_url,
            inference_backend="fake",
            safety_backend="fake",
            **settings,
        )
        children = InProcessChildren(liveness_timeout=LIVENESS_S)
        pipeline = build_pipeline(data, children, horde_session.client, slots=slots, loras=loras)
        made.append(pipeline)
        await pipeline.start_children()
        for slot in pipeline.slots.slots:
            if hold and slot.handle is not None:
                children.hold(slot.handle)
        return pipeline, children

    yield make
    for pipeline in made:
        # As the worker aborts: children killed, what is left faulted, its reports given a moment.
        await pipeline.abort(ABORT_GRACE_S)
