"""Faulted batches and crashed children: every id is reported once, the worker carries on.

The whole worker runs in this process, its children on threads (a crash ends the child's thread with
the fake backend's exit code, as it ends a child process)."""

from __future__ import annotations

import collections
from pathlib import Path

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.worker_support import WorkerInProcess, generations_of, queue, worker_folder

FAIL = "<fake:fail>"
CRASH = "<fake:crash>"


async def test_a_failed_batch_reports_every_id_faulted_once(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        failing = queue(horde, requester, f"a castle {FAIL}", n=4, width=512, height=512)
        healthy = queue(horde, requester, "a meadow", n=2, width=512, height=512)
        folder = worker_folder(tmp_path, horde, owner, max_batch=4, max_power=64)
        worker = WorkerInProcess(folder)
        assert await worker.run() == 0
        failed_jobs = generations_of(horde, failing)
        # The whole batch of 4 was handed out in one pop and every one of its ids reported faulted.
        assert len(failed_jobs) == 4
        assert all(pg.faulted and not pg.is_completed for pg in failed_jobs)
        assert [submit_counter[pg.id] for pg in failed_jobs] == [1, 1, 1, 1]
        # Each faulted submit re-queued its image exactly once (a second one would re-queue it twice);
        # after more than two faults the horde stops offering the request.
        assert failing.n == 4 and failing.faulted
        assert all(pg.is_completed and not pg.faulted for pg in generations_of(horde, healthy))
    [fault] = worker.of_kind("job_faulted")  # one job: the whole batch
    assert fault.fields["reason"] == "the prompt contains the fail marker '<fake:fail>'"
    [popped] = [event for event in worker.of_kind("job_popped") if event.job == fault.job]
    assert sorted(popped.fields["ids"]) == sorted(pg.id for pg in failed_jobs)
    assert worker.errors == []


async def test_a_crashed_inference_process_is_replaced_and_its_job_faulted(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        crashing = queue(horde, requester, f"a volcano {CRASH}", n=1)
        healthy = [queue(horde, requester, f"a lake {index}", n=1) for index in range(6)]
        # The crash is the prompt's, not the model's: strikes must not quarantine the only model here.
        folder = worker_folder(tmp_path, horde, owner, max_threads=2, quarantine_model_after_strikes=10)
        worker = WorkerInProcess(folder)
        assert await worker.run() == 0
        crashed_jobs = generations_of(horde, crashing)
        # Popped again after each fault until the horde gave up on the request (more than 2 faults).
        assert len(crashed_jobs) == 3
        assert all(pg.faulted for pg in crashed_jobs)
        assert all(submit_counter[pg.id] == 1 for pg in crashed_jobs)
        for wp in healthy:
            assert all(pg.is_completed and not pg.faulted for pg in generations_of(horde, wp))
    # Each job was retried once on a fresh process, crashed it too, and was faulted.
    crashed = {pg.id for pg in crashed_jobs}
    assert sorted(event.job or "" for event in worker.of_kind("job_retried")) == sorted(crashed)
    faults = {event.job: event.fields["reason"] for event in worker.of_kind("job_faulted")}
    assert set(faults) == crashed
    assert all(
        reason.startswith("the inference process was lost (it exited with code 70)") for reason in faults.values()
    )
    assert all(reason.endswith("it was lost with every process it ran on (2)") for reason in faults.values())
    assert len(worker.of_kind("child_lost")) == 6  # two children per crashed job, each replaced
    assert worker.errors == []
