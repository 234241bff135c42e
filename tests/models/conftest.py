"""Fixtures of the model tests: a client session, and a local CivitAI stand-in the fetchers are pointed at."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.models.civitai_server import FakeCivitai, civitai_server


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session, closed after the test."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture
async def civitai(civitai_files: FakeCivitai, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeCivitai]:
    """The test module's `civitai_files` served, with `HORDE_CIVITAI_API_URL` pointing the worker at them."""
    async with civitai_server(civitai_files) as api_url:
        monkeypatch.setenv("HORDE_CIVITAI_API_URL", api_url)
        yield civitai_files
