"""Finished results survive a killed worker: the next start submits them once, or drops the late ones."""

from __future__ import annotations

import collections
import json
import signal
import time
from pathlib import Path

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.safety.censor import censor_image
from tests.worker_support import (
    WorkerProcess,
    error_lines,
    events_of,
    generations_of,
    queue,
    run_burst,
    worker_folder,
)

JOBS = 3
NSFW = "<fake:nsfw>"


def _entries(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.json")) if spool.is_dir() else []


async def test_results_spooled_by_a_killed_worker_are_submitted_once_after_a_restart(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        # The first is censored at the requester's wish: the censor image is what is spooled and sent.
        censored = queue(horde, requester, f"a bather {NSFW}", n=1, nsfw=False, censor_nsfw=True)
        requests = [censored] + [queue(horde, requester, f"a harbour {index}", n=1) for index in range(JOBS - 1)]
        horde.faults.add(endpoint="submit", kind="error", status=500)  # refused before it is applied
        folder = worker_folder(tmp_path, horde, owner)
        spool = tmp_path / "models" / "spool" / "Pipeline_Test_Dreamer"  # the default: cache_home/spool/<name>
        first = await WorkerProcess(folder).start()
        try:
            # Each result is spooled before its first submit, which the horde refuses: the moment to kill.
            await first.wait_for_count("submit attempt 1 failed", JOBS)
            assert len(_entries(spool)) == JOBS
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        finally:
            await first.kill()
        ids = [pg.id for wp in requests for pg in generations_of(horde, wp)]
        assert sorted(path.stem for path in _entries(spool)) == sorted(ids)
        assert sum(submit_counter.values()) == 0
        # One result outlived its deadline while the worker was down.
        [censored_id] = [pg.id for pg in generations_of(horde, censored)]
        late = next(path for path in _entries(spool) if path.stem != censored_id)
        entry = json.loads(late.read_text())
        late.write_text(json.dumps({**entry, "deadline": time.time() - 30}))

        horde.faults.clear()
        metrics = folder / "events.jsonl"
        second = await run_burst(folder, "--metrics-file", str(metrics))
        resumed = [job_id for job_id in ids if job_id != late.stem]
        assert {job_id: submit_counter[job_id] for job_id in ids} == {**{job_id: 1 for job_id in resumed}, late.stem: 0}
        for pg in (horde.state.generations[job_id] for job_id in resumed):
            stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{pg.id}.webp")
            assert pg.is_completed and stored is not None
            assert pg.censored == (pg.id == censored_id)
            assert (stored.data == censor_image("nsfw", 512, 512)) == (pg.id == censored_id)
            assert ({"type": "censorship", "value": "nsfw"} in pg.gen_metadata) == (pg.id == censored_id)
    assert _entries(spool) == [] and list(spool.iterdir()) == [spool / ".worker.lock"]
    ended = {record["job"]: record["state"] for record in events_of(metrics, "job_ended")}
    assert ended == {job_id: "submitted" for job_id in resumed}  # the late one was never registered
    assert events_of(metrics, "job_popped") == []  # nothing else was there to pop
    # What the operator is told: the late result's fate, and the resumed ones counted like any submit.
    assert second.output.count(f"Spooled result {late.stem} dropped: its deadline passed 3") == 1
    final_status = [line for line in second.lines if "Status:" in line][-1]
    assert f"Status: {JOBS - 1} jobs, {JOBS - 1} images" in final_status
    assert error_lines(folder / "logs") == []


async def test_a_spool_that_cannot_be_written_is_logged_and_the_result_still_goes_out(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder's parent should be")
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        wp = queue(horde, requester, "a lighthouse", n=1)
        folder = worker_folder(tmp_path, horde, owner, spool_dir=str(blocker / "spool"))
        metrics = folder / "events.jsonl"
        worker = await run_burst(folder, "--metrics-file", str(metrics))
        [pg] = generations_of(horde, wp)
        assert pg.is_completed and submit_counter[pg.id] == 1
    assert [(record["job"], record["state"]) for record in events_of(metrics, "job_ended")] == [(pg.id, "submitted")]
    # What the operator is told: where the spool write failed, why, and that the result went out anyway.
    [line] = [line for line in worker.output.splitlines() if "Cannot spool the result to" in line]
    assert str(blocker / "spool" / f"{pg.id}.json") in line and "Not a directory" in line
    assert "MB free" in line and "uploaded from memory" in line


async def test_a_second_worker_on_the_same_spool_refuses_to_start(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        folder = worker_folder(tmp_path, horde, owner)
        first = await WorkerProcess(folder).start()
        try:
            await first.wait_for_line("Starting the safety process")  # it holds the spool from here on
            second = await run_burst(folder, expected_status=1)  # the same name and cache_home: started twice
            spool = tmp_path / "models" / "spool" / "Pipeline_Test_Dreamer"
            assert f"Cannot start: another worker is already running with the spool folder {spool}" in second.output
            assert "Starting the safety process" not in second.output
            first.send_signal(signal.SIGINT)
            assert await first.wait() == 0, first.output
        finally:
            await first.kill()
