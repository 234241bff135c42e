"""The inference watchdog with real child processes: the real worker CLI against the local horde.

What only a process can show: a child stopped by SIGSTOP (its IO thread too) is lost to the liveness
watch, killed, replaced, and its job retried; a child whose resident memory grows past the limit is
recycled. Assertions are on the event log the worker writes (`--metrics-file`) and on the horde's state.
"""

from __future__ import annotations

import collections
import re
import signal
from pathlib import Path

import psutil

from tests.worker_support import (
    WorkerProcess,
    assert_all_submitted_once,
    error_lines,
    events_of,
    generations_of,
    horde_with_users,
    queue,
    run_burst,
    worker_folder,
)


def _pid_of(metrics: Path, child: str) -> int:
    """The pid of a child, from its `child_started` record."""
    [record] = [record for record in events_of(metrics, "child_started") if record["child"] == child]
    return int(record["pid"])


async def test_a_stopped_child_process_is_lost_replaced_and_its_job_retried(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        wp = queue(horde, requester, "a lighthouse", n=1, steps=8)
        limits = {"process_timeout": 2, "inference_step_timeout": 30}
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"seconds_per_job": 2.0}, **limits)
        metrics = folder / "events.jsonl"
        worker = await WorkerProcess(folder).start("--burst", "-v", "--metrics-file", str(metrics))
        try:
            line = await worker.wait_for_line(": sampling on inference-")  # the moment to act, nothing more
            child = psutil.Process(_pid_of(metrics, line.rsplit(" ", 1)[1]))
            child.send_signal(signal.SIGSTOP)  # mid-sampling: the whole process freezes, its IO thread too
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()
        [pg] = generations_of(horde, wp)
        assert_all_submitted_once(horde, [wp], submit_counter)
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    [lost] = events_of(metrics, "child_lost")
    assert lost["child"] == line.rsplit(" ", 1)[1] and lost["reason"].startswith("no sign of life for ")
    [retried] = events_of(metrics, "job_retried")
    assert retried["job"] == pg.id and retried["attempt"] == 1
    started = [record["child"] for record in events_of(metrics, "job_started")]
    assert started == [lost["child"], "inference-1#3"]
    assert [record["state"] for record in events_of(metrics, "job_ended")] == ["submitted"]
    assert error_lines(folder / "logs") == []


async def test_a_child_whose_memory_grows_past_the_limit_is_recycled(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a desert {index}", n=1) for index in range(2)]
        # A fresh fake child is well under 200 MiB; after one job that leaks 256 MiB it is well over.
        fake = {"seconds_per_job": 0.0, "memory_growth_mib_per_job": 256}
        folder = worker_folder(tmp_path, horde, owner, recycle_process_above_rss_mib=200, fake_backend=fake)
        metrics = folder / "events.jsonl"
        await run_burst(folder, "--metrics-file", str(metrics))
        assert_all_submitted_once(horde, requests, submit_counter)
    recycled = events_of(metrics, "child_recycled")[0]  # the second child grows past it too, after its job
    assert recycled["child"] == "inference-1#2"
    assert re.fullmatch(r"its memory is \d+ MiB \(recycle_process_above_rss_mib: 200\)", recycled["reason"])
    assert [record["child"] for record in events_of(metrics, "job_started")] == ["inference-1#2", "inference-1#3"]
    pids = {_pid_of(metrics, child) for child in ("inference-1#2", "inference-1#3")}
    assert len(pids) == 2  # a new process, not the same one renamed
    assert error_lines(folder / "logs") == []
