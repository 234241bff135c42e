"""The whole worker (the real CLI, its child processes, the fake backends) against the local horde."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.worker_support import (
    WorkerProcess,
    error_lines,
    events_of,
    generations_of,
    queue,
    stored_image,
    worker_folder,
)

SIZES = [(512, 512), (768, 512), (512, 768), (1024, 1024), (640, 384)]
BATCHES = [1, 2, 3, 4]
REQUESTS = 200
SEED = 1000


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_hundred_mixed_requests_are_all_submitted_once(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=10_000_000)
        requests = []
        for index in range(REQUESTS):
            width, height = SIZES[index % len(SIZES)]
            n = BATCHES[index % len(BATCHES)]
            wp = queue(horde, requester, f"e2e {index}", width=width, height=height, n=n, seed=str(SEED))
            requests.append((wp, width, height, n))
        folder = worker_folder(tmp_path, horde, owner, max_threads=2, queue_size=1, max_batch=4, max_power=64)
        metrics = folder / "events.jsonl"
        worker = await WorkerProcess(folder).start("--burst", "--metrics-file", str(metrics))
        try:
            status = await worker.wait()
        finally:
            await worker.kill()
        assert status == 0, worker.output
        popped_ids: set[str] = set()
        for wp, width, height, n in requests:
            jobs = generations_of(horde, wp)
            assert len(jobs) == n, f"request {wp.id}: {len(jobs)} of {n} images handed out"
            for pg in jobs:
                popped_ids.add(pg.id)
                assert pg.is_completed and not pg.faulted
                assert pg.reward > 0
                index = int(next(e["ref"] for e in pg.gen_metadata if e["type"] == "batch_index"))
                assert pg.seed == SEED and 0 <= index < n  # the batch's seed; batch_index tells its images apart
                image = stored_image(horde, pg)
                assert image.format == "WEBP" and image.size == (width, height)
        assert set(submit_counter) == popped_ids
        assert set(submit_counter.values()) == {1}
        ended = events_of(metrics, "job_ended")
        assert sum(record["images"] for record in ended) == len(popped_ids)
        rewards = sum(record["reward"] for record in ended)
        assert rewards == pytest.approx(sum(pg.reward for pg in horde.state.generations.values()))
        assert {record["state"] for record in ended} == {"submitted"}
        records = events_of(metrics)
        assert (records[0]["kind"], records[-1]["kind"]) == ("child_started", "worker_stopped")
    assert error_lines(folder / "logs") == []
    assert "Status: " in worker.output and "kudos" in worker.output
    logs = folder / "logs"
    assert {path.name for path in logs.glob("bridge*.log")} == {
        "bridge.log",
        "bridge_0.log",
        "bridge_1.log",
        "bridge_2.log",
    }
    assert owner.api_key not in worker.output
    assert not any(owner.api_key in path.read_text() for path in logs.iterdir())
    started = events_of(metrics, "child_started")
    # The inference children start in parallel (either may be ready first); none was replaced.
    assert sorted(record["child"] for record in started) == ["inference-1#2", "inference-2#3", "safety#1"]
    pids = [record["pid"] for record in started]
    assert not any(_process_exists(pid) for pid in pids)
