"""Child processes dying, hanging and failing to start under a running worker, by real signals sent
to the PIDs the worker's process tree holds: the worker carries on, replaces what it lost, and every
id it was given ends accounted for."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.chaos.runner import ChaosRun, ChaosWorker
from tests.chaos.table import ChaosTable

JOB_SECONDS = 1.0
# Above the supervisor's 5 s ping interval, or an idle child's last pong is always too old.
LIVENESS_TIMEOUT_S = 8


def _inference_name(slot: int) -> str:
    """Slot n runs the child named `inference-(n+1)`."""
    return f"inference-{slot + 1}"


async def _kill_mid_job(run: ChaosRun, worker: ChaosWorker, slot: int, signum: signal.Signals, label: str) -> int:
    """Wait for a job to start on `slot`, send `signum` to that slot's child; returns the line index."""
    started = await worker.wait_for_line_after(f"started on slot {slot}", len(worker.lines))
    pid = worker.children()[_inference_name(slot)]
    assert pid in {child.pid for child in worker.watch.sample()}, f"{pid} is not a child of the worker"
    worker.watch.seen[pid].send_signal(signum)
    run.injected(label)
    return started


async def test_children_killed_hung_and_crashing_at_start_up(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun("children: SIGKILL, SIGSTOP, start-up crash", tmp_path, chaos_table,
                        max_threads=2, queue_size=1, process_timeout=LIVENESS_TIMEOUT_S,
                        fake_backend={"seconds_per_job": JOB_SECONDS}) as run:
        healthy = [run.queue(f"a forest {index}", n=1) for index in range(14)]
        worker = await run.start_worker()

        # SIGKILL an inference child in the middle of its job, then kill its replacement before it is up.
        await worker.wait_for_line("Serving ")
        known = set(worker.watch.seen)
        mark = await _kill_mid_job(run, worker, 0, signal.SIGKILL, "inference child SIGKILL mid-job")
        await worker.wait_for_line_after(f"{_inference_name(0)}#", mark)
        replacement = await worker.watch.next_child(known, timeout=30)
        replacement.send_signal(signal.SIGKILL)
        run.injected("inference child crash at start-up")
        await worker.wait_for_line_after("replacement attempt 1 failed", mark)
        assert f"(pid {replacement.pid}," not in worker.output, "the replacement was killed only after it was up"

        # SIGSTOP the other inference child mid-job: it answers nothing until the liveness deadline.
        mark = await _kill_mid_job(run, worker, 1, signal.SIGSTOP, "inference child hang mid-job (SIGSTOP)")
        await worker.wait_for_line_after(f"{_inference_name(1)}#", mark)
        await worker.wait_for_line_after("no sign of life", mark)

        # SIGKILL the safety child while jobs flow.
        await worker.wait_for_line_after("submitted:", mark)
        worker.watch.seen[worker.children()["safety"]].send_signal(signal.SIGKILL)
        run.injected("safety child SIGKILL")

        await run.wait_settled()
        assert await run.stop_worker(worker) == 0
        accounting = run.accounting()
        ok = set(accounting.ok)
        for wp in healthy:  # a faulted image is re-queued by the horde and served again
            assert any(pg.id in ok for pg in run.chaos.horde.state.generations_of(wp)), f"{wp.prompt} never served"
        assert accounting.faulted, "no job was faulted although children died under them"
        # Only the stopped child missed its liveness deadline; only the killed ones were lost otherwise.
        assert worker.output.count("lost: no sign of life") == 1, worker.output[-6000:]
        assert worker.output.count(" lost: ") == 3, worker.output[-6000:]
