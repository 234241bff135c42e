"""The horde misbehaving on the wire: 5xx, dropped connections and 429s on pop, upload and submit,
lost submit responses and expired upload URLs. Every one of them is recoverable, so every image must
still be delivered, each id exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.ledger import LOST_POP_REASON
from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable
from tests.worker_support import stored_image

FAST_JOBS = {"seconds_per_job": 0.2}


async def test_wire_faults_on_pop_upload_and_submit(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun("wire faults: pop/upload/submit", tmp_path, chaos_table,
                        max_threads=2, queue_size=1, max_batch=2, max_power=64, fake_backend=FAST_JOBS) as run:
        for index in range(12):
            run.queue(f"a river {index}", n=1 + index % 2, width=512, height=512)
        # `skip` spreads the faults over different jobs; a successful pop resets the pop back-off.
        run.fault("pop", "error", status=500, times=1)
        run.fault("pop", "error", status=503, times=1, skip=3)
        run.fault("pop", "drop", times=1, skip=5)
        run.fault("pop", "rate_limit", times=1, skip=7, retry_after=1)
        run.fault("upload", "error", status=500, times=1)
        run.fault("upload", "drop", times=2, skip=3)  # aiohttp retries an idempotent PUT once by itself
        run.fault("upload", "expired_url", times=1, skip=6)
        run.fault("submit", "error", status=502, times=1, skip=1)
        run.fault("submit", "drop", times=1, skip=4)  # the submit is applied, its response lost
        run.fault("submit", "drop", times=1, skip=8)
        run.fault("submit", "rate_limit", times=1, skip=10, retry_after=1)
        worker = await run.start_worker()
        await run.wait_settled()
        assert await run.stop_worker(worker) == 0
        accounting = run.accounting()
        # Nothing here is a reason to give up an image: all delivered, none faulted or dropped.
        assert accounting.faulted == []
        assert set(accounting.dropped.values()) == {LOST_POP_REASON}  # only the ids of the withheld pop answer
        assert accounting.popped_ids == sum(1 + index % 2 for index in range(12))
        for job_id in accounting.ok:
            pg = run.chaos.horde.state.generations[job_id]
            assert stored_image(run.chaos.running, pg).size == (512, 512)
        assert "already submitted (an earlier response was lost)" in worker.output
        assert "submitting the image inline (upload failed)" in worker.output
