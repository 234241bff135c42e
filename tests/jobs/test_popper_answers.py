"""The popper survives any pop answer: unreadable ones are retried with backoff, messages are kept."""

from __future__ import annotations

import copy
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient, NotJson
from horde_worker_regen.horde.horde_messages import HordeMessage
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.pipeline import popper as popper_module
from horde_worker_regen.pipeline.popper import Popper, PopperSettings, backoff_delay
from horde_worker_regen.pipeline.stats import WorkerStats
from tests.horde.test_pop import JOB_ANSWER
from tests.jobs.conftest import HordeSession
from tests.jobs.test_popper import StubPipeline
from tests.worker_support import MODEL, queue

AiohttpServer = Callable[..., Awaitable[TestServer]]
MESSAGE = {"id": "m-1", "message": "Please update\x07 your worker", "origin": "moderator", "expiry": None}


class ScriptedClient:
    """Answers pops from a script, in order."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    async def pop(self, request: object) -> Any:
        return self.answers.pop(0)


def _popper(client: Any, api_key: str = "k" * 22, url: str = "http://127.0.0.1:9") -> tuple[Popper, StubPipeline]:
    data = BridgeData(api_key=api_key, dreamer_name="Answers Dreamer", horde_url=url)
    pipeline = StubPipeline()
    popper = Popper(
        client,
        build_pop_request(data, [MODEL], bridge_agent(1)),
        pipeline,  # type: ignore[arg-type]
        WorkerStats(),
        PopperSettings(slots=2, queue_size=1, backoff_cap=8.0),
        on_stop=lambda reason, code: pytest.fail(f"the popper stopped: {reason}"),
    )
    return popper, pipeline


async def test_unreadable_answers_back_off_and_the_next_job_is_taken() -> None:
    garbage = [NotJson(9), ["ids"], "text", None, {"ids": {"a": 1}}, {"ids": [1, 2]}, {"ids": ["a\nb"]}]
    popper, pipeline = _popper(ScriptedClient([*garbage, copy.deepcopy(JOB_ANSWER)]))
    delays = [await popper._pop_once() for _ in garbage]
    assert all(delay > 0 for delay in delays) and delays[-1] > delays[0]  # growing backoff
    assert len(pipeline.registry) == 0
    assert await popper._pop_once() == 0.0
    [record] = list(pipeline.registry)
    assert record.ids == tuple(JOB_ANSWER["ids"])


async def test_an_unexpected_error_while_parsing_counts_as_an_unreadable_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(body: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(popper_module, "parse_pop_answer", broken)
    popper, pipeline = _popper(ScriptedClient([copy.deepcopy(JOB_ANSWER)]))
    assert await popper._pop_once() > 0 and len(pipeline.registry) == 0


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000])
async def test_the_client_hands_a_body_that_is_not_json_over_as_such(
    aiohttp_server: AiohttpServer, body: bytes
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v2/generate/pop", answer)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = HordeClient(session, str(server.make_url("/api")), "k" * 22)
        popper, pipeline = _popper(client)
        assert await client.pop(popper._request) == NotJson(len(body))
        assert await popper._pop_once() > 0 and len(pipeline.registry) == 0


async def test_messages_are_kept_and_each_is_kept_once(horde_session: HordeSession) -> None:
    horde = horde_session.horde
    for prompt in ("a lake", "a hill"):
        queue(horde, horde_session.requester, prompt)
    horde.faults.add(endpoint="pop", kind="mangle", path=["messages"], value=[MESSAGE, "junk"], times=2)
    popper, pipeline = _popper(horde_session.client, horde_session.owner.api_key, horde.api_url)
    assert await popper._pop_once() == 0.0 and await popper._pop_once() == 0.0
    assert popper.horde_messages == [HordeMessage("m-1", "Please update  your worker", "moderator")]
    assert len(pipeline.registry) == 2


def test_the_backoff_stays_at_its_cap_however_long_the_failures_last() -> None:
    rng = random.Random(3)
    assert all(4.0 <= backoff_delay(failures, 8.0, rng) <= 8.0 for failures in (5, 1025, 10**6))
