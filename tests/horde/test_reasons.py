"""Why a request got no answer, in words an operator can act on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.horde.reasons import plain_reason
from tests.support import unused_port


async def _failure_of(url: str, timeout: float = 5.0) -> BaseException:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)):
                pass
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return error
    raise AssertionError(f"{url} answered")


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A server that accepts requests and never answers them."""
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    never.set()
    await runner.cleanup()


async def test_a_refused_connection_says_so() -> None:
    error = await _failure_of(f"http://127.0.0.1:{unused_port()}/")
    assert plain_reason(error) == "connection refused"
    assert "Error" not in plain_reason(error) and "(" not in plain_reason(error)


async def test_a_server_that_never_answers_is_a_timeout(silent_server: str) -> None:
    assert plain_reason(await _failure_of(silent_server, timeout=0.3)) == "no answer in time"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (aiohttp.ServerDisconnectedError(), "the server closed the connection before answering"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
        (ValueError("anything else"), "a network error"),
    ],
)
def test_other_failures_have_plain_words(error: BaseException, words: str) -> None:
    assert plain_reason(error) == words


async def test_the_client_names_the_host_and_the_plain_reason() -> None:
    port = unused_port()
    data = BridgeData(api_key="k" * 22, dreamer_name="Reason Dreamer", horde_url=f"http://127.0.0.1:{port}/api/")
    async with aiohttp.ClientSession() as session:
        client = HordeClient(session, data.horde_url, data.api_key.get_secret_value())
        with pytest.raises(HordeRequestError) as raised:
            await client.pop(build_pop_request(data, ["Deliberate"], bridge_agent(1)))
    assert raised.value.message == f"no answer from 127.0.0.1:{port}: connection refused"
