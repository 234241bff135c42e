"""A horde that cannot be reached when the worker starts: the worker starts anyway, says "horde
unreachable" on its dashboard, and serves as soon as the horde answers (never exit 1 for an outage)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from horde_worker_regen.localhorde.faults import FaultRule
from tests.pipeline.conftest import CONDITION_TIMEOUT_S, SubmitCounter
from tests.support import unused_port
from tests.worker_support import WorkerProcess, generations_of, horde_with_users, queue, worker_folder


async def _dashboard_state(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/status.json") as response:
        return str((await response.json())["worker"]["state"])


async def test_a_horde_down_at_start_is_waited_for_and_served_when_back(
    tmp_path: Path, submit_counter: SubmitCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = unused_port()
    async with horde_with_users() as (horde, owner, requester), aiohttp.ClientSession() as session:
        wp = queue(horde, requester, "a quay at dawn", n=1)
        down = horde.faults.add(endpoint="*", kind="down")
        tries = asyncio.Queue[None]()
        take = horde.faults.take

        def noting_tries(endpoint: str, kind: str) -> FaultRule | None:
            rule = take(endpoint, kind)
            if rule is down:
                tries.put_nowait(None)  # the worker tried the horde, and found it down
            return rule

        monkeypatch.setattr(horde.faults, "take", noting_tries)
        folder = worker_folder(
            tmp_path, horde, owner, max_threads=1, queue_size=0, horde_backoff_cap=0.5, dashboard_port=port
        )
        worker = await WorkerProcess(folder).start()
        try:
            # The moments to look (the worker says them as they happen); what is checked is the dashboard.
            await worker.wait_for_line("Dashboard on ")
            await worker.wait_for_line("The horde cannot be reached")
            assert await _dashboard_state(session, port) == "horde unreachable"
            for _ in range(3):  # it keeps trying, with backoff
                await asyncio.wait_for(tries.get(), CONDITION_TIMEOUT_S)
            assert generations_of(horde, wp) == []
            horde.faults.remove(down.id)
            await submit_counter.until(lambda: [pg.is_completed for pg in generations_of(horde, wp)] == [True])
            await worker.wait_for_line("The horde answers again")
            assert await _dashboard_state(session, port) == "serving"
            worker.send_signal(signal.SIGINT)
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()
