"""The horde misbehaving on the wire: 5xx, dropped connections and 429s on pop, upload and submit,
lost submit responses and expired upload URLs. Every one of them is recoverable, so every image must
still be delivered. In the same run, with the default settings (`allow_private_source_urls: false`), source
images that redirect to loopback, private and link-local addresses must never be fetched (the job goes on
without them)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from tests.chaos.ledger import LOST_POP_REASON
from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable
from tests.worker_support import stored_image

FAST_JOBS = {"seconds_per_job": 0.2}
PRIVATE_TARGETS = ["http://10.255.255.1/x.png", "http://169.254.169.254/latest/meta-data/"]


async def test_wire_faults_and_redirects_to_private_addresses(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun(
        "wire faults, redirects to private addresses",
        tmp_path,
        chaos_table,
        max_threads=2,
        queue_size=1,
        max_batch=2,
        max_power=64,
        fake_backend=FAST_JOBS,
    ) as run:
        rivers = [run.queue(f"a river {index}", n=1 + index % 2, width=512, height=512) for index in range(12)]
        redirect = f"{run.chaos.base_url}/chaos/redirect?to="
        secret = run.hostile.url("/secret/64x64.png")  # loopback, but not the horde's origin
        targets = [
            secret,
            run.hostile.url("/secret/64x64.png", host="localhost"),
            *PRIVATE_TARGETS,
            redirect + quote(redirect + quote(secret)),
        ]  # two hops on the horde, then loopback
        refused = [
            run.queue(f"a redirect {index}", source_image=redirect + quote(target))
            for index, target in enumerate(targets)
        ]
        trusted = run.queue(
            "a redirect within the horde",
            source_image=redirect + quote(f"{run.chaos.base_url}/chaos/image/512x512.png"),
        )
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
        run.injected("source redirected to a private address", len(refused))
        worker = await run.start_worker()
        await run.wait_settled()
        assert await run.stop_worker(worker) == 0
        accounting = run.accounting()
        # Nothing here is a reason to give up an image: all delivered, none faulted or dropped.
        assert accounting.faulted == []
        assert set(accounting.dropped.values()) == {LOST_POP_REASON}  # only the ids of the withheld pop answer
        for job_id in accounting.ok:
            pg = run.chaos.horde.state.generations[job_id]
            assert stored_image(run.chaos.running, pg).size == (512, 512)
        generations = run.chaos.horde.state.generations_of
        assert sum(len(generations(wp)) for wp in rivers) == sum(1 + index % 2 for index in range(12))
        for wp in refused:
            [pg] = generations(wp)
            assert pg.id in accounting.ok
            assert {"type": "source_image", "value": "download_failed"} in pg.gen_metadata, pg.gen_metadata
        assert run.hostile.hits["secret"] == 0  # never contacted
        [pg] = generations(trusted)
        assert pg.id in accounting.ok and not any(e.get("type") == "source_image" for e in pg.gen_metadata)
        assert run.chaos.hits["image"] == 1
        assert "already submitted (an earlier response was lost)" in worker.output
        assert "submitting the image inline (upload failed)" in worker.output
