"""Fixtures for the local horde's tests (reusable by other suites).

- `clock`: a `FakeClock`; tests move time with `clock.advance(s)`, never by sleeping.
- `horde`: a `LocalHorde` on that clock with no background sweep (tests call `horde.sweep()`).
- `client`: an aiohttp test client of `create_app(horde=horde)`.
- `owner` / `requester`: a trusted worker owner and a requester with kudos.
- `live_horde`: the server on a real 127.0.0.1 port (`RunningLocalHorde`), on the same fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from tests.localhorde.support import REGEN_AGENT

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def clock() -> FakeClock:
    """The server's clock."""
    return FakeClock()


@pytest.fixture
def horde(clock: FakeClock) -> LocalHorde:
    """A local horde with no background sweep."""
    return LocalHorde(LocalHordeConfig(sweep_interval=0), clock=clock)


@pytest.fixture
async def client(horde: LocalHorde, aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    """An HTTP client of the app."""
    return await aiohttp_client(create_app(horde=horde))


@pytest.fixture
def owner(horde: LocalHorde) -> User:
    """A trusted account that runs workers."""
    return horde.add_user("owner", trusted=True, kudos=100)


@pytest.fixture
def requester(horde: LocalHorde) -> User:
    """An account that asks for images."""
    return horde.add_user("requester", kudos=5000)


@pytest.fixture
async def live_horde(clock: FakeClock) -> AsyncIterator[RunningLocalHorde]:
    """The server on a real TCP port."""
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0), clock=clock) as running:
        yield running


@pytest.fixture
def bridge_agent() -> str:
    """The latest reGen bridge agent."""
    return REGEN_AGENT
