"""Shutdown on SIGINT and SIGTERM: the first finishes and submits everything in flight and exits 0;
a second one faults what is left (one faulted submit per id) and exits at once."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import pytest

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.worker_support import WorkerProcess, error_lines, generations_of, queue, worker_folder

SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _child_pids(output: str) -> list[int]:
    return [int(line.split("(pid ")[1].split(",")[0]) for line in output.splitlines() if " ready (pid " in line]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_one_signal_finishes_and_submits_everything_in_flight(
    tmp_path: Path, signum: signal.Signals, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        requests = [queue(horde, requester, f"a harbour {index}", n=1) for index in range(20)]
        folder = worker_folder(tmp_path, horde, owner, max_threads=2, queue_size=1,
                               fake_backend={"seconds_per_job": 0.5})
        worker = await WorkerProcess(folder).start("-v")
        try:
            await worker.wait_for_line("started on slot")
            worker.send_signal(signum)
            status = await worker.wait()
        finally:
            await worker.kill()
        assert status == 0, worker.output
        popped = [pg for wp in requests for pg in generations_of(horde, wp)]
        assert popped, "nothing was popped"
        assert all(pg.is_completed and not pg.faulted for pg in popped)
        assert all(submit_counter[pg.id] == 1 for pg in popped)
        assert len(popped) < len(requests), "popping went on after the signal"
        assert sum(wp.n for wp in requests) == len(requests) - len(popped)
    assert f"{signum.name} received; finishing the jobs in flight" in worker.output
    assert error_lines(folder / "logs") == []
    assert not any(_alive(pid) for pid in _child_pids(worker.output))


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_a_second_signal_faults_what_is_left_and_exits_at_once(
    tmp_path: Path, signum: signal.Signals, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        requests = [queue(horde, requester, f"a glacier {index}", n=2) for index in range(4)]
        # Jobs far longer than the test allows: only an abort can end it in time.
        folder = worker_folder(tmp_path, horde, owner, max_threads=2, queue_size=1, max_batch=2, max_power=64,
                               fake_backend={"seconds_per_job": 600})
        worker = await WorkerProcess(folder).start("-v")
        try:
            await worker.wait_for_line("started on slot 0")
            await worker.wait_for_line("started on slot 1")
            worker.send_signal(signum)
            await worker.wait_for_line("finishing the jobs in flight")
            worker.send_signal(signum)
            status = await worker.wait(timeout=60)
        finally:
            await worker.kill()
        assert status == 128 + signum, worker.output
        popped = [pg for wp in requests for pg in generations_of(horde, wp)]
        assert len(popped) >= 4  # two batches of two were running
        assert all(pg.faulted and not pg.is_completed for pg in popped)
        assert all(submit_counter[pg.id] == 1 for pg in popped)
        # One faulted submit per id re-queues each image exactly once: every request is whole again.
        assert all(wp.n == 2 for wp in requests)
    assert error_lines(folder / "logs") == []
    assert not any(_alive(pid) for pid in _child_pids(worker.output))
