"""The inference watchdog: the whole worker against the local horde, its children in this process.

A child that hangs mid-step, or stops outright (SIGSTOP: `freeze`), is killed and replaced and its job
is retried once on a fresh child when its deadline allows, else faulted; a model whose load kills every
child is quarantined and no longer offered; a child is recycled after N jobs with its model preloaded,
and replaced when the preload hangs; a slot whose children keep failing to start is taken out of
service. Limits are a second or two so that every case ends quickly. Each test asserts on the worker's
events and on what the horde received. Two cases keep real processes (`test_watchdog_processes.py`).
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from horde_worker_regen.jobs.events import Event, EventKind
from horde_worker_regen.localhorde import pop as horde_pop
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.processes.messages import Preload, RunJob
from tests.worker_support import (
    MODEL,
    WorkerInProcess,
    assert_all_submitted_once,
    generations_of,
    horde_with_users,
    queue,
    worker_folder,
)

HANG = "<fake:hang>"
HANG_ONCE = "<fake:hang-once>"
POISON = "Dreamshaper"
# Quick limits: a step may take 1 s (x pixels x batch over 512x512), a load 1 s, a silent child 30 s.
QUICK = {"inference_step_timeout": 1, "process_timeout": 30, "preload_timeout": 1}


def _is(kind: EventKind, **fields: Any) -> Callable[[Event], bool]:
    """An event predicate: of `kind`, with these field values."""
    return lambda event: event.kind == kind and all(event.fields.get(k) == v for k, v in fields.items())


def _children_of(worker: WorkerInProcess, kind: EventKind, job: str) -> list[str]:
    """The children named by the events of `kind` of one job, in order."""
    return [event.fields["child"] for event in worker.of_kind(kind) if event.job == job]


def _ended(worker: WorkerInProcess) -> collections.Counter[str]:
    return collections.Counter(event.fields["state"] for event in worker.of_kind("job_ended"))


async def test_a_child_hung_mid_step_is_replaced_and_its_job_retried_and_submitted(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        hanging = queue(horde, requester, f"a clock {HANG_ONCE}", n=1, steps=10)
        healthy = [queue(horde, requester, f"a river {index}", n=1) for index in range(3)]
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, **QUICK))
        assert await worker.run() == 0
        [pg] = generations_of(horde, hanging)
        assert_all_submitted_once(horde, [hanging, *healthy], submit_counter)
    [killed] = worker.of_kind("child_killed")
    assert killed.job == pg.id and killed.fields["child"] == "inference-1#2"  # (#1 is the safety child)
    assert "spent more than 1s on one sampling step and was killed" in killed.fields["reason"]
    [retried] = worker.of_kind("job_retried")
    assert (retried.job, retried.fields["attempt"]) == (pg.id, 1)
    assert _children_of(worker, "job_started", pg.id) == ["inference-1#2", "inference-1#3"]
    assert worker.of_kind("job_faulted") == [] and _ended(worker) == {"submitted": 4}
    assert worker.errors == []


async def test_a_hang_whose_deadline_leaves_no_time_for_a_retry_is_faulted_once(
    tmp_path: Path, submit_counter: collections.Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An 11 s ttl: the job starts at once (the first expected job time, 10 s, fits), but once the hang is
    # caught (1 s step limit) it no longer does.
    monkeypatch.setattr(horde_pop, "ttl_of", lambda *args: 11)
    async with horde_with_users() as (horde, owner, requester):
        hanging = queue(horde, requester, f"a clock {HANG}", n=1, steps=10)
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, **QUICK))
        assert await worker.run() == 0
        jobs = generations_of(horde, hanging)
        assert jobs and all(pg.faulted for pg in jobs)
        assert [submit_counter[pg.id] for pg in jobs] == [1] * len(jobs)
    assert worker.of_kind("job_retried") == []
    # The first job hung; the horde's re-queued copies were faulted at once or after hanging in turn.
    faults = {event.job: event.fields["reason"] for event in worker.of_kind("job_faulted")}
    assert set(faults) == {pg.id for pg in jobs}
    assert "too little time is left before its deadline to retry it" in faults[jobs[0].id]
    assert {event.job for event in worker.of_kind("child_killed")} <= set(faults)
    assert worker.errors == []


@pytest.mark.parametrize(
    ("limits", "detected_by"),
    [
        ({"process_timeout": 2, "inference_step_timeout": 30}, "child_lost"),
        ({"process_timeout": 60, "inference_step_timeout": 1}, "child_killed"),
    ],
    ids=["liveness", "stage-limit"],
)
async def test_a_stopped_child_is_detected_mid_step_and_replaced(
    tmp_path: Path, submit_counter: collections.Counter[str], limits: dict[str, Any], detected_by: EventKind
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        wp = queue(horde, requester, "a lighthouse", n=1, steps=8)
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"seconds_per_job": 2.0}, **limits)
        worker = WorkerInProcess(folder)
        async with worker.running() as run:
            sampling = await worker.wait_for(_is("stage_started", stage="sampling"))
            frozen = sampling.fields["child"]
            worker.children.freeze(worker.child(frozen))  # mid-sampling: it says nothing more, pongs included
            detected = await worker.wait_for(_is(detected_by, child=frozen))
            assert await run == 0
        [pg] = generations_of(horde, wp)
        assert_all_submitted_once(horde, [wp], submit_counter)
    if detected_by == "child_lost":
        assert detected.fields["reason"].startswith("no sign of life for ")
    else:
        assert detected.job == pg.id and "on one sampling step" in detected.fields["reason"]
    [retried] = worker.of_kind("job_retried")
    assert retried.job == pg.id and _children_of(worker, "job_started", pg.id) == [frozen, "inference-1#3"]
    assert worker.errors == []


async def test_a_poison_model_is_quarantined_and_the_other_model_keeps_serving(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        poisoned = [_queue_for(horde, requester, POISON, f"a tower {index}") for index in range(3)]
        healthy = [queue(horde, requester, f"a field {index}", n=1) for index in range(4)]
        fake = {"seconds_per_job": 0.0, "poison_models": [POISON]}
        folder = worker_folder(tmp_path, horde, owner, models_to_load=[MODEL, POISON], max_threads=2,
                               fake_backend=fake, **QUICK)  # fmt: skip
        worker = WorkerInProcess(folder)
        assert await worker.run() == 0
        assert_all_submitted_once(horde, healthy, submit_counter)
        poison_jobs = [pg for wp in poisoned for pg in generations_of(horde, wp)]
        assert poison_jobs and all(pg.faulted and submit_counter[pg.id] == 1 for pg in poison_jobs)
        [horde_worker] = horde.state.workers.values()
        assert list(horde_worker.models) == [MODEL]  # the last pop no longer offered it
    [quarantined] = worker.of_kind("subject_withdrawn")
    assert quarantined.fields["subject"] == f"model '{POISON}'"
    assert quarantined.fields["reason"].endswith("it was lost with every process it ran on (2)")
    lost = [event.fields["reason"] for event in worker.of_kind("child_lost")]
    assert lost and set(lost) == {"it exited with code 71"}  # the fake's poison exit code, from its thread
    assert [line for line in worker.errors if "quarantined" not in line] == []


def _queue_for(horde: RunningLocalHorde, requester: Any, model: str, prompt: str) -> Any:
    return queue_request(horde.horde, requester, {"prompt": prompt, "models": [model], "params": {"n": 1}})


async def test_a_child_is_recycled_after_n_jobs_with_its_model_preloaded(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a forest {index}", n=1) for index in range(3)]
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, recycle_process_after_jobs=2))
        assert await worker.run() == 0
        assert_all_submitted_once(horde, requests, submit_counter)
    # After jobs 1 and 2, between jobs: a new child, the model loaded before job 3 reaches it.
    [recycled] = worker.of_kind("child_recycled")
    assert recycled.fields == {"child": "inference-1#2", "reason": "it has run 2 jobs (recycle_process_after_jobs: 2)"}
    sent_to_new = [message for child, message in worker.children.sent if child == "inference-1#3"]
    assert [type(message) for message in sent_to_new] == [Preload, RunJob]
    assert sent_to_new[0] == Preload(3, MODEL)  # its RunJob waited for the preload's answer
    started = [event.fields["child"] for event in worker.of_kind("child_started")]
    assert started == ["safety#1", "inference-1#2", "inference-1#3"]
    assert worker.errors == []


async def test_a_preload_that_hangs_is_timed_and_its_child_replaced(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [queue(horde, requester, f"a marsh {index}", n=1) for index in range(2)]
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, recycle_process_after_jobs=1, **QUICK))

        def hold_the_recycled_child(event: Event) -> None:
            # The recycled slot's new child takes its preload and never starts it, as a wedged load would.
            if event.kind == "child_started" and event.fields["child"] == "inference-1#3":
                worker.children.hold(worker.child("inference-1#3"))

        worker.events.add_sink(hold_the_recycled_child)
        assert await worker.run() == 0
        assert_all_submitted_once(horde, requests, submit_counter)
    assert [event.fields["child"] for event in worker.of_kind("child_recycled")][:1] == ["inference-1#2"]
    [killed] = worker.of_kind("child_killed")
    assert killed.fields == {"child": "inference-1#3", "reason": "its preload took too long"}
    second = [event for event in worker.of_kind("job_started")][1]
    assert second.fields["child"] == "inference-1#4"
    assert worker.of_kind("job_faulted") == [] and worker.errors == []


@pytest.mark.parametrize("slots", [2, 1])
async def test_a_slot_whose_process_keeps_failing_to_start_is_taken_out_of_service(
    tmp_path: Path, submit_counter: collections.Counter[str], slots: int
) -> None:
    # Children 1 (safety) to slots + 1 start; every later one fails at start-up.
    async with horde_with_users() as (horde, owner, requester):
        # Enough work for the one slot left to still be serving when the other gives up (~3 s).
        requests = [queue(horde, requester, f"a bridge {index}", n=1) for index in range(10)]
        fake = {"seconds_per_job": 0.5, "fail_start_from_incarnation": slots + 2}
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, max_threads=slots, fake_backend=fake, **QUICK))
        async with worker.running() as run:
            await worker.wait_for(_is("worker_started"))
            worker.children.crash(worker.child("inference-1#2"), -signal.SIGKILL)
            status = await run
        jobs = [pg for wp in requests for pg in generations_of(horde, wp)]
        assert all(submit_counter[pg.id] == 1 for pg in jobs)
        if slots == 2:  # the other slot serves every job
            assert all(pg.is_completed and not pg.faulted for pg in jobs)
    [lost] = worker.of_kind("child_lost")
    assert lost.fields == {"child": "inference-1#2", "reason": "it exited with code -9"}
    started = [event.fields["child"] for event in worker.of_kind("child_started")]
    assert started == ["safety#1", *(f"inference-{n}#{n + 1}" for n in range(1, slots + 1))]  # none came back
    out_of_service = "Inference slot 0 is out of service: its process failed to start 3 times in a row"
    assert any(out_of_service in line for line in worker.errors)  # what the operator is told
    assert status == (1 if slots == 1 else 0)
    if slots == 2:
        assert _ended(worker) == {"submitted": len(jobs)}
