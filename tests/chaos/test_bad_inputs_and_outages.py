"""One worker run through hostile jobs and a horde that goes away twice.

Hostile jobs: payloads outside the API contract (unknown sampler, absurd and negative sizes, a prompt
of megabytes, unparsable fields) must fault only their own job; NUL bytes in a prompt, source images
that are not images, truncated or decompression bombs, bodies that never end or trickle forever,
non-http(s) URLs and sources of the wrong size must not fail the job (it falls back to txt2img and
says why in gen_metadata). Meanwhile the worker is put into maintenance and taken out again, and the
horde goes down for 30 s (its port closed) while jobs are in flight and comes back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from horde_worker_regen.localhorde.entities import ProcessingGeneration
from tests.chaos.hostile import decompression_bomb
from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable
from tests.worker_support import stored_image

WORKER_NAME = "Pipeline Test Dreamer"
HORDE_DOWN_S = 30.0
# A ttl so short that a source trickling forever gets one download attempt (its 30 s timeout), not three.
SHORT_TTL = 55
INPUT_FAILED = {"download_failed", "parse_failed"}
NUL_PROMPT = "a cat\x00 in a\x00\x00 hat <chaos:nul>"


def _set(**fields: Any) -> Any:
    """A tamper that overwrites payload fields."""
    return lambda body: body["payload"].update(fields)


def _source(url: str) -> Any:
    """A tamper that hands the job a source image URL of its own."""
    return lambda body: body.update(source_image=url, source_processing="img2img")


def _input_failure(pg: ProcessingGeneration) -> str | None:
    return next((entry["value"] for entry in pg.gen_metadata if entry.get("type") == "source_image"), None)


async def test_hostile_jobs_maintenance_and_a_horde_down_for_30s(tmp_path: Path, chaos_table: ChaosTable) -> None:
    # The hostile source server listens on loopback: allow_private_source_urls lets it stand for a public host.
    async with ChaosRun(
        "bad inputs, maintenance, horde down 30 s",
        tmp_path,
        chaos_table,
        max_threads=2,
        queue_size=2,
        horde_backoff_cap=4,
        fake_backend={"seconds_per_job": 0.5},
        allow_private_source_urls=True,
    ) as run:
        await asyncio.to_thread(decompression_bomb)  # built once, before the server has to serve it
        tamper, hostile = run.chaos.tamper.add, run.hostile.url
        contract_breakers = [
            run.queue(f"a cat {tamper('<chaos:sampler>', _set(sampler_name='k_no_such_sampler'))}"),
            run.queue(f"a cat {tamper('<chaos:huge>', _set(width=1_048_576, height=1_048_576))}"),
            run.queue(f"a cat {tamper('<chaos:negative>', _set(height=-512))}"),
            run.queue(f"a cat {tamper('<chaos:unparsable>', _set(ddim_steps='many', cfg_scale={'x': 1}))}"),
            run.queue(
                "a cat "
                + tamper(
                    "<chaos:mega-prompt>",
                    lambda b: b["payload"].update(prompt=b["payload"]["prompt"] + " and a mouse" * 300_000),
                )
            ),  # 3.6 MB
        ]
        nul = run.queue(f"a cat {tamper('<chaos:nul>', _set(prompt=NUL_PROMPT))}")
        bad_sources = [
            run.queue(f"a dog {tamper('<chaos:file-url>', _source('file:///etc/passwd'))}"),
            run.queue(f"a dog {tamper('<chaos:ftp-url>', _source('ftp://127.0.0.1:21/x.png'))}"),
            run.queue(f"a dog {tamper('<chaos:data-url>', _source('data:image/png;base64,iVBORw0KGgo='))}"),
            run.queue("a dog, text", source_image=hostile("/not-an-image")),
            run.queue("a dog, truncated", source_image=hostile("/truncated.png")),
            run.queue("a dog, bomb", source_image=hostile("/bomb.png")),
            run.queue("a dog, endless", source_image=hostile("/endless.png")),
            run.queue(
                f"a dog, slow {tamper('<chaos:short-ttl>', lambda b: b.update(ttl=SHORT_TTL))}",
                source_image=hostile("/slow.png"),
            ),
        ]
        odd_sizes = run.queue(
            "a dog, odd sizes",
            source_image=hostile("/image/37x901.png"),
            source_mask=hostile("/image/1000x17.png"),
            source_processing="inpainting",
        )
        worker = await run.start_worker()
        await run.wait_until(lambda: run.hostile.hits["slow"] > 0, "the trickling source to be requested")

        # Maintenance on: nothing is handed out and the worker is told; off: it pops again by itself.
        run.chaos.horde.set_maintenance(WORKER_NAME, True)
        run.injected("maintenance on/off")
        handed_out = len(run.chaos.ledger.batches)
        during_maintenance = [run.queue(f"a bird {index}") for index in range(3)]
        refused = run.chaos.ledger.pop_errors["WorkerMaintenance"]
        await run.wait_until(
            lambda: run.chaos.ledger.pop_errors["WorkerMaintenance"] >= refused + 2, "two pops refused for maintenance"
        )
        assert len(run.chaos.ledger.batches) == handed_out
        run.chaos.horde.set_maintenance(WORKER_NAME, False)
        await run.wait_settled(during_maintenance)

        # The horde goes down with jobs in flight, and requests arrive meanwhile; then it comes back.
        before_outage = [run.queue(f"a fish {index}", steps=10) for index in range(4)]
        await run.wait_until(
            lambda: any(run.chaos.horde.state.generations_of(wp) for wp in before_outage), "a job to be in flight"
        )
        await run.chaos.stop()
        run.injected("horde down 30 s")
        during_outage = [run.queue(f"a frog {index}") for index in range(3)]
        await asyncio.sleep(HORDE_DOWN_S)  # the outage itself, not a wait for anything
        await run.chaos.start()
        await run.wait_settled()
        assert await run.stop_worker(worker) == 0

        accounting = run.accounting()
        generations = run.chaos.horde.state.generations_of
        for wp in contract_breakers:
            jobs = generations(wp)
            assert jobs and all(pg.id in accounting.faulted for pg in jobs), f"{wp.prompt[:40]}: not faulted"
        for wp in [nul, *bad_sources, odd_sizes, *during_maintenance, *before_outage, *during_outage]:
            [pg] = generations(wp)  # one id, delivered the first time
            assert pg.id in accounting.ok, f"{wp.prompt[:40]}: {pg.id} not delivered"
        for wp in bad_sources:
            assert _input_failure(generations(wp)[0]) in INPUT_FAILED, f"{wp.prompt[:40]}: no failure reported"
        assert stored_image(run.chaos.running, generations(odd_sizes)[0]).size == (512, 512)
        assert run.hostile.hits["slow"] == 1  # one attempt: the deadline left no room for another
