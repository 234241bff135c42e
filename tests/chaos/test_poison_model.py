"""A poison model: loading it kills every inference process that tries. Its jobs end faulted (each
id once), the model is quarantined (no longer offered to the horde), and the healthy model keeps
being served by the replaced processes."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable
from tests.worker_support import MODEL

POISON = "Dreamshaper"


async def test_a_poison_model_is_quarantined_while_the_healthy_one_keeps_serving(
    tmp_path: Path, chaos_table: ChaosTable
) -> None:
    async with ChaosRun(
        "poison model",
        tmp_path,
        chaos_table,
        models_to_load=[MODEL, POISON],
        max_threads=2,
        fake_backend={"seconds_per_job": 0.2, "poison_models": [POISON]},
    ) as run:
        poisoned = [run.queue(f"a tower {index}", model=POISON, n=1) for index in range(3)]
        healthy = [run.queue(f"a field {index}", n=1) for index in range(8)]
        worker = await run.start_worker()
        await run.wait_settled(healthy)
        [horde_worker] = run.chaos.horde.state.workers.values()
        await run.wait_until(lambda: POISON not in horde_worker.models, "the poison model to be no longer offered")
        assert await run.stop_worker(worker) == 0
        run.injected("poison model jobs", len(poisoned))
        accounting = run.accounting()
        generations = run.chaos.horde.state.generations_of
        for wp in healthy:
            assert all(pg.id in accounting.ok for pg in generations(wp)), f"{wp.prompt} not served"
        poison_ids = {pg.id for wp in poisoned for pg in generations(wp)}
        assert poison_ids and poison_ids <= set(accounting.faulted)
        assert all(accounting.submits[job_id] == 1 for job_id in poison_ids)
        assert horde_worker.models == [MODEL]
