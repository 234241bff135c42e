"""The worker killed outright (SIGKILL) with finished results waiting in its spool, then restarted:
every result is submitted once, none twice, and the killed worker leaves no process behind. And a
spool on a full disk: every write fails with ENOSPC, and every result still goes out from memory."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.chaos.runner import SETTLE_TIMEOUT_S, ChaosRun
from tests.chaos.table import ChaosTable

# A tmpfs of 64 KiB, filled up, mounted over a folder in a user and mount namespace of the worker's
# own: no privileges needed, and the disk of the machine running the tests is left alone.
FULL_DISK_SCRIPT = (
    'mount -t tmpfs -o size=64k tmpfs "$0" || { echo "cannot mount a tmpfs over $0" >&2; exit 97; }; '
    'head -c 1048576 /dev/zero > "$0/filler" 2>/dev/null; exec "$@"'
)


def full_disk(folder: Path) -> tuple[str, ...]:
    """A wrapper command that runs the worker with a full disk mounted over `folder`."""
    return ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK_SCRIPT, str(folder))


def _spooled(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


async def test_a_worker_killed_with_results_in_its_spool_submits_them_once_after_a_restart(
    tmp_path: Path, chaos_table: ChaosTable
) -> None:
    spool = tmp_path / "spool"
    async with ChaosRun(
        "worker SIGKILL, restart from the spool",
        tmp_path,
        chaos_table,
        spool_dir=str(spool),
        max_threads=2,
        max_batch=2,
        max_power=64,
        fake_backend={"seconds_per_job": 0.2},
    ) as run:
        requests = [run.queue(f"a lighthouse {index}", n=1 + index % 2) for index in range(4)]
        images = sum(wp.n for wp in requests)
        refusing = run.fault("submit", "error", status=503)  # refused before it is applied: results wait
        first = await run.start_worker(expected_status=-signal.SIGKILL)
        # Each result is written to the spool before its upload and submit: the requests that follow wake this.
        await run.wait_until(lambda: len(_spooled(spool)) == images, f"{images} results in the spool")
        children = [child.pid for child in first.watch.sample()]
        first.send_signal(signal.SIGKILL)
        run.injected("worker SIGKILL")
        assert await run.wait_exit(first) == -signal.SIGKILL
        await first.watch.wait_gone(SETTLE_TIMEOUT_S)
        assert not first.watch.orphans(), f"the killed worker's children {children} did not exit"
        assert {path.stem for path in _spooled(spool)} == {
            pg.id for wp in requests for pg in run.chaos.horde.state.generations_of(wp)
        }

        run.chaos.horde.faults.remove(refusing.id)
        second = await run.start_worker()
        await run.wait_settled()
        assert await run.stop_worker(second) == 0
        accounting = run.accounting()
        assert len(accounting.ok) == images
        assert {job_id: accounting.submits[job_id] for job_id in accounting.ok} == dict.fromkeys(accounting.ok, 1)
        assert _spooled(spool) == []
        assert f"Resuming {images} spooled result(s)" in second.output


async def test_a_full_disk_under_the_spool_loses_no_result(tmp_path: Path, chaos_table: ChaosTable) -> None:
    spool = tmp_path / "full-disk"
    spool.mkdir()
    async with ChaosRun(
        "disk full under the spool",
        tmp_path,
        chaos_table,
        spool_dir=str(spool),
        max_threads=2,
        fake_backend={"seconds_per_job": 0.1},
    ) as run:
        requests = [run.queue(f"a desert {index}") for index in range(6)]
        worker = await run.start_worker(wrapper=full_disk(spool))
        await run.wait_settled()
        assert await run.stop_worker(worker) == 0
        failed_writes = [line for line in worker.lines if "Cannot spool the result" in line]
        run.injected("spool write on a full disk", len(failed_writes))
        assert len(failed_writes) == len(requests), worker.output[-3000:]
        assert all("No space left on device" in line or "disk is full" in line for line in failed_writes)
        assert len(run.accounting().ok) == len(requests)
        assert list(spool.iterdir()) == []  # the namespace's tmpfs is gone with the worker; nothing leaked here
