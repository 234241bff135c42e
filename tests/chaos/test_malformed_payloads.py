"""One worker run through pop answers with fields of the wrong type, shape or range.

The horde hands out jobs whose answer has one field changed (the `mangle` fault): a sampler that is
an object, post-processors in an object, numbers as text, text as numbers, a payload that is a list,
a ttl that is text, a model that is an object, nesting far deeper than any sound job. Each such job
must be reported once, faulted (the horde re-queues its image), and only that job: the
worker keeps popping, serves a sound job queued afterwards, and exits 0 when stopped. Malformed
diagnostics (`skipped`, `messages`) never fault a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chaos.runner import ChaosRun
from tests.chaos.table import ChaosTable

DEEP: Any = "bottom"
for _ in range(12):
    DEEP = {"deeper": DEEP}

# (path, value or None to remove the field), each handed to one job in this order.
WRONG_TYPES: list[tuple[list[str | int], Any]] = [
    (["payload", "sampler_name"], {"name": "k_euler"}),
    (["payload", "post_processing"], {"GFPGAN": True}),
    (["payload", "width"], "512"),
    (["payload", "ddim_steps"], 1e300),
    (["payload", "cfg_scale"], [7.5]),
    (["payload", "seed"], 12345),
    (["payload", "loras"], [{"name": {"id": 1}}]),
    (["payload", "karras"], "true"),
    (["payload", "prompt"], None),
    (["payload", "tis"], [[[[]]]]),
    (["payload", "special"], DEEP),
    (["payload"], ["not", "an", "object"]),
    (["ttl"], "150"),
    (["model"], {"name": "Deliberate"}),
    (["source_image"], 12345),
    (["extra_source_images"], {"image": "x"}),
    (["r2_uploads"], "https://r2.example/one-url-for-all"),
    (["id"], [1]),
]
HARMLESS: list[tuple[list[str | int], Any]] = [(["skipped"], "lots"), (["messages"], {"id": 1})]


async def test_malformed_payloads_fault_their_own_job_only(tmp_path: Path, chaos_table: ChaosTable) -> None:
    async with ChaosRun(
        "malformed payloads", tmp_path, chaos_table, max_threads=1, queue_size=1, fake_backend={"seconds_per_job": 0.1}
    ) as run:
        for path, value in [*WRONG_TYPES, *HARMLESS]:
            change = {"remove": True} if value is None else {"value": value}
            run.fault("pop", "mangle", path=path, times=1, **change)
        cats = [run.queue(f"a cat {index}") for index in range(len(WRONG_TYPES) + len(HARMLESS))]
        worker = await run.start_worker()
        await run.wait_settled(cats)
        sound = run.queue("a sound dog, queued after them all")
        await run.wait_settled([sound])
        assert await run.stop_worker(worker) == 0

        accounting = run.accounting()
        batches = run.chaos.ledger.batches  # in pop order: the n-th job answer took the n-th rule
        mangled, harmless = batches[: len(WRONG_TYPES)], batches[len(WRONG_TYPES) : len(WRONG_TYPES) + len(HARMLESS)]
        for (path, _), ids in zip(WRONG_TYPES, mangled, strict=True):
            assert all(job_id in accounting.faulted for job_id in ids), f"{path}: {ids} not faulted"
        for (path, _), ids in zip(HARMLESS, harmless, strict=True):
            assert all(job_id in accounting.ok for job_id in ids), f"{path}: {ids} not delivered"
        for wp in cats:  # a faulted image is re-queued: delivered later, or given up after three faults
            jobs = run.chaos.horde.state.generations_of(wp)
            assert wp.faulted or any(pg.id in accounting.ok for pg in jobs), wp.prompt
        [delivered] = run.chaos.horde.state.generations_of(sound)
        assert delivered.id in accounting.ok
