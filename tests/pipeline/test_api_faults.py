"""The real worker against a local horde that puts it into maintenance, goes down, or keeps it there.

Popping stops and resumes by itself; what is in flight is finished and submitted meanwhile; each
change of state is one log line. Backoff caps are small (`horde_backoff_cap`) so nothing waits long.
"""

from __future__ import annotations

import base64
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.jobs.test_inputs_hostile import png_claiming
from tests.worker_support import (
    WorkerInProcess,
    WorkerProcess,
    error_lines,
    generations_of,
    horde_with_users,
    queue,
    run_burst,
    worker_folder,
)

NAME = "Pipeline Test Dreamer"


@asynccontextmanager
async def _one_slot_worker(
    tmp_path: Path, horde: RunningLocalHorde, owner: User, submits: int
) -> AsyncIterator[WorkerProcess]:
    """A one-slot worker (1 s jobs, no queue, 0.5 s horde backoff cap), handed over once its first job started.

    After the test's steps it must submit `submits` jobs in all, then stop on SIGINT with status 0.
    """
    folder = worker_folder(
        tmp_path,
        horde,
        owner,
        max_threads=1,
        queue_size=0,
        horde_backoff_cap=0.5,
        fake_backend={"seconds_per_job": 1.0},
    )
    worker = await WorkerProcess(folder).start("-v")
    try:
        await worker.wait_for_line("started on slot")
        yield worker
        await worker.wait_for_count(" submitted: ", submits)
        worker.send_signal(signal.SIGINT)
        assert await worker.wait() == 0, worker.output
    finally:
        await worker.kill()


async def test_maintenance_stops_popping_finishes_in_flight_and_resumes_when_lifted(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        first = queue(horde, requester, "a harbour", n=1)
        second = queue(horde, requester, "a lagoon", n=1)
        async with _one_slot_worker(tmp_path, horde, owner, submits=2) as worker:
            horde.horde.set_maintenance(NAME, True, "Too many faulted jobs")
            await worker.wait_for_line("keeps this worker in maintenance: Too many faulted jobs")
            await worker.wait_for_count(" submitted: ", 1)
            # The job in flight was finished and submitted; the waiting one was not popped.
            assert all(pg.is_completed for pg in generations_of(horde, first))
            assert generations_of(horde, second) == []
            horde.horde.set_maintenance(NAME, False)
            await worker.wait_for_line("out of maintenance; popping again")
        assert [pg.is_completed for pg in generations_of(horde, second)] == [True]
    assert worker.output.count("keeps this worker in maintenance") == 1, "one line per change of state"
    assert "remove_maintenance_on_init" in worker.output
    assert error_lines(worker.folder / "logs") == []


async def test_a_horde_that_goes_down_and_comes_back(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a dune {index}", n=1) for index in range(2)]
        async with _one_slot_worker(tmp_path, horde, owner, submits=2) as worker:
            down = horde.faults.add(endpoint="*", kind="down")
            await worker.wait_for_line("The horde cannot be reached")
            await worker.wait_for_line("upload attempt 2 failed")  # the job in flight keeps retrying
            horde.faults.remove(down.id)
            await worker.wait_for_line("The horde answers again")
        assert all(pg.is_completed and not pg.faulted for wp in requests for pg in generations_of(horde, wp))
    assert worker.output.count("The horde cannot be reached") == 1, "one line per change of state, not per try"
    assert error_lines(worker.folder / "logs") == []


async def test_remove_maintenance_on_init_lifts_it_before_the_first_pop(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        horde.state.add_worker(NAME, owner)
        horde.horde.set_maintenance(NAME, True, "Too many faulted jobs")
        wp = queue(horde, requester, "a canyon", n=1)
        folder = worker_folder(tmp_path, horde, owner, remove_maintenance_on_init=True)
        worker = await run_burst(folder)
        assert [pg.is_completed for pg in generations_of(horde, wp)] == [True]
        maintained = horde.horde.worker(NAME)
        assert maintained is not None and not maintained.maintenance
    assert "is out of maintenance" in worker.output
    assert "keeps this worker in maintenance" not in worker.output


async def test_a_decompression_bomb_source_faults_nothing_but_its_own_input(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        bomb = base64.b64encode(png_claiming(100_000, 100_000)).decode()
        hostile = queue(horde, requester, "a quarry", width=512, height=512, source_image=bomb)
        healthy = queue(horde, requester, "an orchard", width=512, height=512)
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, max_threads=2))  # children on threads
        assert await worker.run() == 0
        [pg] = generations_of(horde, hostile)
        assert pg.is_completed and not pg.faulted  # served as txt2img, and the requester is told why
        assert {"type": "source_image", "value": "parse_failed"} in pg.gen_metadata
        assert all(pg.is_completed and not pg.faulted for pg in generations_of(horde, healthy))
    assert {event.fields["state"] for event in worker.of_kind("job_ended")} == {"submitted"}
    assert worker.of_kind("job_faulted", "job_dropped") == [] and worker.errors == []
