"""A model offered to the horde whose file is missing: every job on it fails at once ("Model X not found
on disk!"). Left alone, such a worker faults a job every few seconds and the horde puts it into
maintenance (more than 20 aborted jobs in an hour). The fault breaker withdraws the model after two
faults; the healthy model goes on being served, and the horde never sees more than those two."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable
from tests.worker_support import MODEL, error_lines

BROKEN = "Dreamshaper"
BROKEN_REQUESTS = 25  # more than the horde's 20 aborts an hour, were each to be faulted


async def test_a_model_whose_file_is_missing_is_withdrawn_after_two_faults(
    tmp_path: Path, chaos_table: ChaosTable
) -> None:
    async with ChaosRun(
        "missing model file",
        tmp_path,
        chaos_table,
        models_to_load=[BROKEN, MODEL],
        max_threads=1,
        queue_size=1,
        fake_backend={"seconds_per_job": 0.1, "missing_models": [BROKEN]},
    ) as run:
        broken = [run.queue(f"a tower {index}", model=BROKEN, n=1) for index in range(BROKEN_REQUESTS)]
        healthy = [run.queue(f"a field {index}", n=1) for index in range(6)]
        worker = await run.start_worker()
        await run.wait_settled(healthy)
        [horde_worker] = run.chaos.horde.state.workers.values()
        await run.wait_until(lambda: BROKEN not in horde_worker.models, "the broken model to be no longer offered")
        assert horde_worker.models == [MODEL]
        assert await run.stop_worker(worker) == 0
        run.injected("missing model file")
        accounting = run.accounting()
        generations = run.chaos.horde.state.generations_of
        for wp in healthy:
            assert all(pg.id in accounting.ok for pg in generations(wp)), f"{wp.prompt} not served"
        handed_out = [pg.id for wp in broken for pg in generations(wp)]
        # At most two jobs of the broken model were ever popped, and each was faulted once.
        assert 1 <= len(handed_out) <= 2 and set(handed_out) <= set(accounting.faulted)
        assert all(accounting.submits[job_id] == 1 for job_id in handed_out)
        assert not horde_worker.maintenance and horde_worker.aborted_jobs <= 2
        assert sum(wp.n for wp in broken) == BROKEN_REQUESTS  # every broken request is still there for others
    assert len(error_lines(tmp_path / "logs")) == 1  # the withdrawal, said once
