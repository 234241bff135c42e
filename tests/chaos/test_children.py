"""Child processes dying, hanging and failing to start under a running worker, by real signals sent
to the PIDs of the worker's process tree: the worker carries on, replaces exactly what it lost, and
every id it was given ends accounted for."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.chaos.processes import READY
from tests.chaos.runner import ChaosRun, ChaosWorker
from tests.chaos.table import ChaosTable

JOB_SECONDS = 1.0
# Above the supervisor's 5 s ping interval, or an idle child's last pong is always too old.
LIVENESS_TIMEOUT_S = 8


def _inference_name(slot: int) -> str:
    """Slot n runs the child named `inference-(n+1)`."""
    return f"inference-{slot + 1}"


async def _signal_mid_job(run: ChaosRun, worker: ChaosWorker, slot: int, signum: signal.Signals, label: str) -> int:
    """Wait for a job to start on `slot` and signal that slot's child; returns (line index, pid)."""
    started = await worker.wait_for_line_after(f"started on slot {slot}", len(worker.lines))
    pid = worker.children()[_inference_name(slot)]
    assert pid in {child.pid for child in worker.watch.sample()}, f"{pid} is not a child of the worker"
    worker.watch.seen[pid].send_signal(signum)
    run.injected(label)
    return started


async def test_children_killed_hung_and_crashing_at_start_up(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun(
        "children: SIGKILL, SIGSTOP, start-up crash",
        tmp_path,
        chaos_table,
        max_threads=2,
        queue_size=1,
        process_timeout=LIVENESS_TIMEOUT_S,
        fake_backend={"seconds_per_job": JOB_SECONDS},
    ) as run:
        healthy = [run.queue(f"a forest {index}", n=1) for index in range(24)]
        worker = await run.start_worker()
        await worker.wait_for_line("Serving ")

        # SIGKILL an inference child in the middle of its job, then kill its replacement before it is up.
        known = set(worker.watch.seen)
        mark = await _signal_mid_job(run, worker, 0, signal.SIGKILL, "inference child SIGKILL mid-job")
        replacement = await worker.watch.next_child(known, worker.folder, timeout=30)
        replacement.send_signal(signal.SIGKILL)
        run.injected("inference child crash at start-up")
        assert await worker.wait_for_ready(_inference_name(0), mark) != replacement.pid

        # SIGSTOP the other inference child mid-job: it does nothing, answers nothing, until it is replaced.
        stopped = worker.watch.seen[worker.children()[_inference_name(1)]]
        mark = await _signal_mid_job(run, worker, 1, signal.SIGSTOP, "inference child hang mid-job (SIGSTOP)")
        await worker.wait_for_ready(_inference_name(1), mark)
        await run.wait_exited(stopped, "the stopped child to be killed")

        # SIGKILL the safety child while jobs flow.
        mark = len(worker.lines)
        worker.watch.seen[worker.children()["safety"]].send_signal(signal.SIGKILL)
        run.injected("safety child SIGKILL")
        await worker.wait_for_ready("safety", mark)

        await run.wait_settled()
        assert await run.stop_worker(worker) == 0
        ok = set(run.accounting().ok)
        for wp in healthy:  # a job lost with its child is retried, or faulted and re-queued by the horde
            assert any(pg.id in ok for pg in run.chaos.horde.state.generations_of(wp)), f"{wp.prompt} never served"
        # Exactly one replacement per child killed or stopped (three at start, three replacements): none
        # was replaced without a cause, and the one killed during its start-up never came up.
        ready = [match for line in worker.lines if (match := READY.search(line))]
        assert len(ready) == 6, [match[0] for match in ready]
        assert replacement.pid not in {int(match["pid"]) for match in ready}
