"""Every way the worker ends leaves no child process behind: the `.abort` file, a third signal, and
`exit_on_unhandled_faults`. Children are collected by PID (psutil) while the worker runs."""

from __future__ import annotations

import collections
import re
import signal
import time
from pathlib import Path

import psutil

from tests.worker_support import WorkerProcess, generations_of, horde_with_users, queue, worker_folder

CRASH = "<fake:crash>"


def _children(worker: WorkerProcess) -> list[psutil.Process]:
    children = psutil.Process(worker.pid).children(recursive=True)
    assert children, "the worker runs no child process"
    return children


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_none_alive(children: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not [process for process in alive if _alive(process)], f"orphans: {alive}"


async def test_an_abort_file_aborts_like_a_second_signal(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a fjord {index}", n=1) for index in range(3)]
        folder = worker_folder(tmp_path, horde, owner, max_threads=2, fake_backend={"seconds_per_job": 600})
        (folder / ".abort").write_text("")  # left from an earlier run: removed, not obeyed
        worker = await WorkerProcess(folder).start("-v")
        try:
            await worker.wait_for_line("started on slot 0")
            await worker.wait_for_line("started on slot 1")
            children = _children(worker)
            started = time.monotonic()
            (folder / ".abort").write_text("")
            status = await worker.wait(timeout=60)
            elapsed = time.monotonic() - started
        finally:
            await worker.kill()
        assert status == 1, worker.output
        assert elapsed < 20
        popped = [pg for wp in requests for pg in generations_of(horde, wp)]
        assert len(popped) >= 2 and all(pg.faulted for pg in popped)
        assert all(submit_counter[pg.id] == 1 for pg in popped)
    assert "left from an earlier run" in worker.output
    assert ".abort found: faulting what is left" in worker.output
    assert not (folder / ".abort").exists()
    _assert_none_alive(children)


async def test_a_third_signal_kills_everything_at_once(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        queue(horde, requester, "a glacier", n=1)
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"seconds_per_job": 600})
        worker = await WorkerProcess(folder).start("-v")
        try:
            await worker.wait_for_line("started on slot 0")
            children = _children(worker)
            # Submits hang: the second signal's faulted reports would take their whole grace period.
            horde.faults.add(endpoint="submit", kind="latency", latency_s=600)
            worker.send_signal(signal.SIGTERM)
            await worker.wait_for_line("finishing the jobs in flight")
            worker.send_signal(signal.SIGTERM)
            await worker.wait_for_line("faulting what is left")
            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            status = await worker.wait(timeout=30)
            elapsed = time.monotonic() - started
        finally:
            await worker.kill()
        assert status == 128 + signal.SIGTERM, worker.output
        assert elapsed < 4, "the third signal must not wait for the abort's grace period"
    assert "Third SIGTERM: killing every child process and exiting now" in worker.output
    _assert_none_alive(children)


async def test_exit_on_unhandled_faults_stops_at_a_crashed_process(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        crashing = queue(horde, requester, f"a volcano {CRASH}", n=1)
        folder = worker_folder(tmp_path, horde, owner, exit_on_unhandled_faults=True)
        worker = await WorkerProcess(folder).start("-v")
        try:
            await worker.wait_for_line("started on slot 0")
            children = _children(worker)
            status = await worker.wait(timeout=60)
        finally:
            await worker.kill()
        assert status == 1, worker.output
        # The crashed job was still reported (faulted once) before the worker stopped.
        assert [pg.faulted for pg in generations_of(horde, crashing)] == [True]
    assert re.search(r"Stopping: exit_on_unhandled_faults is set and inference-1#\d+ was lost", worker.output)
    _assert_none_alive(children)
