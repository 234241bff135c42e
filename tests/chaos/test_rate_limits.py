"""The horde rate-limiting the worker: bursts of 429 with `Retry-After` on pop, upload and submit.

A 429 says "later", never "no": however long the burst, every finished image is delivered, once,
and none is dropped or faulted. The first job meets each burst alone, so that its one id is refused
more often than any fixed number of tries would allow (the old rule gave up a submit after 8); then
a mixed run spreads bursts over batches in flight together.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable

FAST_JOBS = {"seconds_per_job": 0.2}
# Longer than the old rule's 8 submit tries (and 4 upload tries) for the one id of the first job.
SUBMIT_BURST = 12
UPLOAD_BURST = 6
POP_BURST = 10


async def test_bursts_of_429_on_pop_upload_and_submit_cost_no_image(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun(
        "rate limited",
        tmp_path,
        chaos_table,
        max_threads=1,
        queue_size=1,
        max_batch=2,
        max_power=64,
        fake_backend=FAST_JOBS,
    ) as run:
        alone = run.queue("a lighthouse alone", n=1, width=512, height=512)
        run.fault("pop", "rate_limit", times=POP_BURST, retry_after=1)
        run.fault("upload", "rate_limit", times=UPLOAD_BURST, retry_after=1)
        submit_burst = run.fault("submit", "rate_limit", times=SUBMIT_BURST, retry_after=1)
        worker = await run.start_worker()
        await run.wait_settled([alone])
        assert submit_burst.fired == SUBMIT_BURST  # all of it on the first job's one id
        [pg] = run.chaos.horde.state.generations_of(alone)
        assert pg.id in run.accounting().ok

        mixed = [run.queue(f"a lighthouse {index}", n=1 + index % 2, width=512, height=512) for index in range(8)]
        run.fault("pop", "rate_limit", times=6, skip=2, retry_after=1)
        run.fault("upload", "rate_limit", times=10, skip=1, retry_after=1)
        run.fault("submit", "rate_limit", times=24, skip=2, retry_after=2)
        await run.wait_settled()
        assert await run.stop_worker(worker) == 0

        accounting = run.accounting()
        assert accounting.faulted == [] and accounting.dropped == {}
        delivered = [pg for wp in [alone, *mixed] for pg in run.chaos.horde.state.generations_of(wp)]
        assert len(delivered) == 1 + sum(1 + index % 2 for index in range(8))  # no image re-queued
        assert sorted(pg.id for pg in delivered) == sorted(accounting.ok)  # each delivered, and once
        assert set(run.chaos.ledger.submit_counts().values()) == {1}  # one accepted submit per id
