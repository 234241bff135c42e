"""A local horde with a fake clock, a horde client on it, and a way to pop one real job."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
from tests.worker_support import MODEL, queue


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
