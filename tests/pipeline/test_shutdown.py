"""Shutdown on SIGINT and SIGTERM: the first finishes and submits everything in flight and exits 0;
a second one faults what is left (one faulted submit per id) and exits at once. A signal at any
moment of the start-up (checks, children starting, idle) ends the worker with 0, promptly, and leaves
no process of the run behind (found by an environment marker every child inherits)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from horde_worker_regen.localhorde import pop as horde_pop
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.worker_support import (
    WorkerProcess,
    error_lines,
    events_of,
    generations_of,
    horde_with_users,
    queue,
    worker_folder,
)

SIGNALS = [signal.SIGINT, signal.SIGTERM]
RUN_MARKER = "HORDE_WORKER_TEST_RUN"
PROMPT_STOP_S = 3.0


def _child_pids(metrics: Path) -> list[int]:
    pids = [int(record["pid"]) for record in events_of(metrics, "child_started")]
    assert pids, "no child was started"
    return pids


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
        folder = worker_folder(
            tmp_path, horde, owner, max_threads=2, queue_size=1, fake_backend={"seconds_per_job": 0.5}
        )
        metrics = folder / "events.jsonl"
        worker = await WorkerProcess(folder).start("-v", "--metrics-file", str(metrics))
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
    assert f"{signum.name} received; finishing the jobs in flight" in worker.output  # what the operator is told
    ended = events_of(metrics, "job_ended")
    assert len(ended) == len(popped) and {record["state"] for record in ended} == {"submitted"}
    assert error_lines(folder / "logs") == []
    assert not any(_alive(pid) for pid in _child_pids(metrics))


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_a_second_signal_faults_what_is_left_and_exits_at_once(
    tmp_path: Path, signum: signal.Signals, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        requests = [queue(horde, requester, f"a glacier {index}", n=2) for index in range(4)]
        # Jobs far longer than the test allows: only an abort can end it in time.
        folder = worker_folder(
            tmp_path,
            horde,
            owner,
            max_threads=2,
            queue_size=1,
            max_batch=2,
            max_power=64,
            fake_backend={"seconds_per_job": 600},
        )
        metrics = folder / "events.jsonl"
        worker = await WorkerProcess(folder).start("-v", "--metrics-file", str(metrics))
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
    faults = events_of(metrics, "job_faulted")
    assert {record["reason"] for record in faults} == {"the worker was stopped before it finished"}
    assert sum(len(record["ids"]) for record in events_of(metrics, "job_popped")) == len(popped)
    assert error_lines(folder / "logs") == []
    assert not any(_alive(pid) for pid in _child_pids(metrics))


@dataclass(frozen=True)
class Moment:
    """When the signal is sent: once the worker printed `line` (with a horde endpoint held up meanwhile),
    or, without a line, once the horde answered the worker's first pop."""

    name: str
    line: str | None
    held_endpoint: str | None = None


MOMENTS = [
    Moment("model resolution", "Fetching the model usage figures", held_endpoint="stats_models"),
    Moment("API key check", "Checking the API key", held_endpoint="find_user"),
    Moment("children starting", "safety#1 ready"),  # the inference children are being spawned
    Moment("idle", None),  # no request is queued: the first pop finds nothing
]


@pytest.fixture
def first_pop(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set when the local horde handles a worker's pop (its check-in, wrapped)."""
    popped = asyncio.Event()
    original = horde_pop.check_in

    def noting(*args: Any) -> None:
        original(*args)
        popped.set()

    monkeypatch.setattr(horde_pop, "check_in", noting)
    return popped


@pytest.fixture
def run_marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A value that the worker and every process it starts inherit in their environment."""
    marker = uuid.uuid4().hex
    monkeypatch.setenv(RUN_MARKER, marker)
    return marker


def _processes_of_run(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid != os.getpid() and process.environ().get(RUN_MARKER) == marker:
                found.append(process)
    return found


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("moment", MOMENTS, ids=lambda m: m.name.replace(" ", "-"))
async def test_a_signal_at_any_moment_of_the_start_exits_0_promptly_with_no_process_left(
    tmp_path: Path, moment: Moment, signum: signal.Signals, run_marker: str, first_pop: asyncio.Event
) -> None:
    async with horde_with_users() as (horde, owner, _):
        if moment.held_endpoint is not None:  # the worker waits on the horde there until the signal
            horde.faults.add(endpoint=moment.held_endpoint, kind="latency", latency_s=600)
        folder = worker_folder(tmp_path, horde, owner, max_threads=2)
        worker = await WorkerProcess(folder).start("-v")
        try:
            if moment.line is not None:
                await worker.wait_for_line(moment.line)
            else:
                await asyncio.wait_for(first_pop.wait(), 120)
            started = time.monotonic()
            worker.send_signal(signum)
            status = await worker.wait(timeout=60)
            elapsed = time.monotonic() - started
        finally:
            await worker.kill()
    assert status == 0, worker.output
    assert elapsed < PROMPT_STOP_S, f"{elapsed:.1f}s to stop:\n{worker.output}"
    _, left = psutil.wait_procs(_processes_of_run(run_marker), timeout=5)
    assert not [process for process in left if _still_running(process)], f"left running: {left}"
    assert error_lines(folder / "logs") == []
