"""A horde that cannot be reached when the worker starts: the worker starts anyway, says "horde
unreachable" on its dashboard, and serves as soon as the horde answers (never exit 1 for an outage)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.support import unused_port
from tests.worker_support import WorkerProcess, generations_of, horde_with_users, queue, worker_folder

CONDITION_TIMEOUT_S = 90.0
POLL_S = 0.1


async def _until(condition: Callable[[], Awaitable[bool]], worker: WorkerProcess) -> None:
    """Poll `condition` (state held by the horde in this process, or the worker's status page)."""

    async def wait() -> None:
        while not await condition():
            assert worker.still_running(), worker.output
            await asyncio.sleep(POLL_S)

    await asyncio.wait_for(wait(), CONDITION_TIMEOUT_S)


async def test_a_horde_down_at_start_is_waited_for_and_served_when_back(tmp_path: Path) -> None:
    port = unused_port()
    async with horde_with_users() as (horde, owner, requester), aiohttp.ClientSession() as session:
        wp = queue(horde, requester, "a quay at dawn", n=1)
        down = horde.faults.add(endpoint="*", kind="down")
        folder = worker_folder(
            tmp_path, horde, owner, max_threads=1, queue_size=0, horde_backoff_cap=0.5, dashboard_port=port
        )
        worker = await WorkerProcess(folder).start()

        async def state() -> str | None:
            try:
                async with session.get(f"http://127.0.0.1:{port}/status.json") as response:
                    return str((await response.json())["worker"]["state"])
            except aiohttp.ClientError:
                return None  # the dashboard is not up yet

        async def state_is(expected: str) -> bool:
            return await state() == expected

        async def delivered() -> bool:
            return [pg.is_completed for pg in generations_of(horde, wp)] == [True]

        try:
            await _until(lambda: state_is("horde unreachable"), worker)
            fired = down.fired

            async def kept_trying() -> bool:
                return down.fired >= fired + 2

            await _until(kept_trying, worker)
            assert generations_of(horde, wp) == []
            horde.faults.remove(down.id)
            await _until(delivered, worker)
            await _until(lambda: state_is("serving"), worker)
            worker.send_signal(signal.SIGINT)
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()
