"""The inference watchdog end to end, with the real worker CLI against the local horde.

A child that hangs mid-step, or is stopped outright (SIGSTOP), is killed and replaced and its job is
retried once on a fresh process when its deadline allows, else faulted; a model whose load kills every
process is quarantined and no longer offered; a child is recycled after N jobs. Timeouts are set to a
few seconds so that every case ends quickly.
"""

from __future__ import annotations

import collections
import re
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from horde_worker_regen.localhorde import pop as horde_pop
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.worker_support import (
    MODEL,
    WorkerProcess,
    assert_all_submitted_once,
    error_lines,
    generations_of,
    horde_with_users,
    queue,
    run_burst,
    worker_folder,
)

HANG = "<fake:hang>"
HANG_ONCE = "<fake:hang-once>"
POISON = "Dreamshaper"
# Quick limits: a step may take 2 s (x pixels x batch over 512x512), a silent child 30 s.
QUICK = {"inference_step_timeout": 2, "process_timeout": 30, "preload_timeout": 5}


def _ready_pids(output: str) -> dict[str, int]:
    """Child name (e.g. inference-1#2) -> pid, from the supervisor's "ready" lines."""
    return {match[1]: int(match[2]) for match in re.finditer(r"(\S+) ready \(pid (\d+)", output)}


def _child(worker: WorkerProcess, name: str) -> psutil.Process:
    """The worker's child process that came up as `name` (e.g. inference-1#2)."""
    pid = _ready_pids(worker.output)[name]
    [child] = [process for process in psutil.Process(worker.pid).children() if process.pid == pid]
    return child


async def test_a_child_hung_mid_step_is_replaced_and_its_job_retried_and_submitted(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        hanging = queue(horde, requester, f"a clock {HANG_ONCE}", n=1, steps=10)
        healthy = [queue(horde, requester, f"a river {index}", n=1) for index in range(3)]
        worker = await run_burst(worker_folder(tmp_path, horde, owner, **QUICK))
        assert len(generations_of(horde, hanging)) == 1
        assert_all_submitted_once(horde, [hanging, *healthy], submit_counter)
    assert "spent more than 2s on one sampling step and was killed; retrying it on a fresh process" in worker.output
    assert "inference-1#3 ready" in worker.output  # the hung child (#2; #1 is the safety child) was replaced
    assert " faulted: " not in worker.output
    assert error_lines(tmp_path / "logs") == []


async def test_a_hang_whose_deadline_leaves_no_time_for_a_retry_is_faulted_once(
    tmp_path: Path, submit_counter: collections.Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 12 s ttl: the job starts at once (the first expected job time, 10 s, fits), but once the hang is
    # caught (3 s step limit) it no longer does.
    monkeypatch.setattr(horde_pop, "ttl_of", lambda *args: 12)
    async with horde_with_users() as (horde, owner, requester):
        hanging = queue(horde, requester, f"a clock {HANG}", n=1, steps=10)
        worker = await run_burst(worker_folder(tmp_path, horde, owner, **(QUICK | {"inference_step_timeout": 3})))
        jobs = generations_of(horde, hanging)
        assert jobs and all(pg.faulted for pg in jobs)
        assert [submit_counter[pg.id] for pg in jobs] == [1] * len(jobs)
    assert "retrying" not in worker.output
    # The first job hung; the horde's re-queued copies were faulted at once or after hanging in turn.
    assert "too little time is left before its deadline to retry it" in worker.output
    assert worker.output.count(" faulted: ") == len(jobs)
    assert error_lines(tmp_path / "logs") == []


@pytest.mark.parametrize(
    ("limits", "detected_by"),
    [
        ({"process_timeout": 2, "inference_step_timeout": 30}, "lost: no sign of life"),
        ({"process_timeout": 60, "inference_step_timeout": 2}, "spent more than 2s on one sampling step"),
    ],
    ids=["liveness", "stage-limit"],
)
async def test_a_stopped_child_is_detected_mid_step_and_replaced(
    tmp_path: Path, submit_counter: collections.Counter[str], limits: dict[str, Any], detected_by: str
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        wp = queue(horde, requester, "a lighthouse", n=1, steps=8)
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"seconds_per_job": 2.0}, **limits)
        worker = await WorkerProcess(folder).start("--burst", "-v")
        try:
            line = await worker.wait_for_line(": sampling on inference-")
            child = _child(worker, line.rsplit(" ", 1)[1])
            child.send_signal(signal.SIGSTOP)  # mid-sampling: the whole process freezes, its IO thread too
            await worker.wait_for_line(detected_by)
            assert await worker.wait() == 0
        finally:
            await worker.kill()
        assert len(generations_of(horde, wp)) == 1
        assert_all_submitted_once(horde, [wp], submit_counter)
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    assert "retrying it on a fresh process" in worker.output
    assert error_lines(folder / "logs") == []


def _queue_for(horde: RunningLocalHorde, requester: Any, model: str, prompt: str) -> Any:
    return queue_request(horde.horde, requester, {"prompt": prompt, "models": [model], "params": {"n": 1}})


async def test_a_poison_model_is_quarantined_and_the_other_model_keeps_serving(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        poisoned = [_queue_for(horde, requester, POISON, f"a tower {index}") for index in range(3)]
        healthy = [queue(horde, requester, f"a field {index}", n=1) for index in range(4)]
        folder = worker_folder(
            tmp_path,
            horde,
            owner,
            models_to_load=[MODEL, POISON],
            max_threads=2,
            fake_backend={"seconds_per_job": 0.0, "poison_models": [POISON]},
            **QUICK,
        )
        worker = await run_burst(folder)
        assert_all_submitted_once(horde, healthy, submit_counter)
        poison_jobs = [pg for wp in poisoned for pg in generations_of(horde, wp)]
        assert poison_jobs and all(pg.faulted and submit_counter[pg.id] == 1 for pg in poison_jobs)
        [horde_worker] = horde.state.workers.values()
        assert list(horde_worker.models) == [MODEL]  # the last pop no longer offered it
    quarantined = f"Model '{POISON}' quarantined: 2 of its jobs in a row killed every inference process"
    assert quarantined in worker.output
    assert [line for line in error_lines(folder / "logs") if quarantined not in line] == []


async def test_a_child_is_recycled_after_n_jobs_with_its_model_preloaded(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a forest {index}", n=1) for index in range(3)]
        folder = worker_folder(tmp_path, horde, owner, recycle_process_after_jobs=2)
        worker = await run_burst(folder, "-v")
        assert_all_submitted_once(horde, requests, submit_counter)
    # After jobs 1 and 2, between jobs: a new process, the model loaded before job 3 reaches it.
    assert worker.output.count("it has run 2 jobs (recycle_process_after_jobs: 2)") == 1
    assert f"{MODEL} preloaded by inference-1#3" in worker.output
    inference_pids = {pid for name, pid in _ready_pids(worker.output).items() if name.startswith("inference-")}
    assert len(inference_pids) == 2
    assert error_lines(folder / "logs") == []


async def test_a_child_whose_memory_grows_past_the_limit_is_recycled(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a desert {index}", n=1) for index in range(2)]
        # A fresh fake child is well under 200 MiB; after one job that leaks 256 MiB it is well over.
        fake = {"seconds_per_job": 0.0, "memory_growth_mib_per_job": 256}
        folder = worker_folder(tmp_path, horde, owner, recycle_process_above_rss_mib=200, fake_backend=fake)
        worker = await run_burst(folder, "-v")
        assert_all_submitted_once(horde, requests, submit_counter)
    assert re.search(
        r"Recycling slot 0 \(inference-1#2, pid \d+\): its memory is \d+ MiB "
        r"\(recycle_process_above_rss_mib: 200\)",
        worker.output,
    )
    assert f"{MODEL} preloaded by inference-1#3" in worker.output
    assert error_lines(folder / "logs") == []


@pytest.mark.parametrize("slots", [2, 1])
async def test_a_slot_whose_process_keeps_failing_to_start_is_taken_out_of_service(
    tmp_path: Path, submit_counter: collections.Counter[str], slots: int
) -> None:
    # Processes 1 (safety) to slots + 1 start; every later one fails at start-up.
    async with horde_with_users() as (horde, owner, requester):
        # Enough work for the one slot left to still be serving when the other gives up (~8 s).
        requests = [queue(horde, requester, f"a bridge {index}", n=1) for index in range(10)]
        fake = {"seconds_per_job": 1.0, "fail_start_from_incarnation": slots + 2}
        folder = worker_folder(tmp_path, horde, owner, max_threads=slots, fake_backend=fake, **QUICK)
        worker = await WorkerProcess(folder).start("--burst")
        try:
            await worker.wait_for_line("Serving ")
            _child(worker, "inference-1#2").kill()
            status = await worker.wait()
        finally:
            await worker.kill()
        jobs = [pg for wp in requests for pg in generations_of(horde, wp)]
        assert all(submit_counter[pg.id] == 1 for pg in jobs)
        if slots == 2:  # the other slot serves every job
            assert all(pg.is_completed and not pg.faulted for wp in requests for pg in generations_of(horde, wp))
    out_of_service = "Inference slot 0 is out of service: its process failed to start 3 times in a row"
    assert out_of_service in worker.output and "See logs/bridge_1.log" in worker.output
    if slots == 1:
        assert status == 1
        assert "Stopping: every inference slot is out of service" in worker.output
    else:
        assert status == 0
        unexpected = [
            line
            for line in error_lines(folder / "logs")
            if out_of_service not in line and "Child process could not start" not in line
        ]
        assert unexpected == []
