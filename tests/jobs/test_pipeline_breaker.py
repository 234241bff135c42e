"""The pipeline's fault path through the fault breaker, with a stub supervisor: what is run, faulted, offered."""

from __future__ import annotations

import time

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.jobs.record import JobState
from horde_worker_regen.processes.messages import JobFailed, RunJob
from horde_worker_regen.scheduling.breaker import Subject
from tests.jobs.test_pipeline_intake import _job, _pipeline

MISSING = "Model Broken not found on disk!"


def _missing(key: str) -> JobFailed:
    return JobFailed(1, key, MISSING, 0.0, 0.0, "missing_model", "Broken")


def _started(supervisor: object) -> list[str]:
    return [message.spec.job_key for _, message in supervisor.sent if isinstance(message, RunJob)]  # type: ignore[attr-defined]


async def test_two_missing_model_faults_withdraw_the_model_and_settle_its_queued_jobs() -> None:
    pipeline, supervisor = _pipeline(1, data=BridgeData(api_key="k" * 22, fault_breaker_cooldown=30))
    now = time.monotonic()
    for key, model in (("b1", "Broken"), ("b2", "Broken"), ("h1", "Healthy"), ("b3", "Broken")):
        pipeline.job_popped(_job(key, model), now)
    handle = pipeline.slots.slots[0].handle
    assert handle is not None and _started(supervisor) == ["b1"]
    pipeline.on_child_message(handle, _missing("b1"))
    # One strike: the next job of the model runs and settles it; no more of it is popped meanwhile.
    assert _started(supervisor) == ["b1", "b2"]
    assert pipeline.offer(["Healthy", "Broken"]) == ["Healthy"]
    pipeline.on_child_message(handle, _missing("b2"))
    # Withdrawn: its queued job is faulted without running, the healthy one runs.
    assert _started(supervisor) == ["b1", "b2", "h1"]
    b3 = pipeline.registry.get("b3")
    assert b3 is not None and b3.state is JobState.UPLOADING and "withdrawn" in (b3.fault_reason or "")
    assert pipeline.offer(["Healthy", "Broken"]) == ["Healthy"]
    status = pipeline.guard.status()
    assert [(w["subject"], w["kind"]) for w in status["withdrawn"]] == [("Broken", "missing_model")]
    assert 0 < status["withdrawn"][0]["remaining_s"] <= 30 * 60
    # Served alone, a withdrawn model leaves nothing to offer: popping stops, the worker keeps running.
    assert pipeline.offer(["Broken"]) == [] and pipeline.guard.popping_stopped
    assert pipeline.guard.status()["popping_stopped"] is True
    assert 0 < (pipeline.reopens_in() or 0) <= 30 * 60


async def test_a_failing_post_processor_turns_post_processing_off() -> None:
    pipeline, _ = _pipeline(1)
    handle = pipeline.slots.slots[0].handle
    assert handle is not None
    for key in ("p1", "p2"):
        pipeline.job_popped(_job(key, "Healthy"), time.monotonic())
        pipeline.on_child_message(
            handle,
            JobFailed(
                1, key, "post-processor GFPGAN produced no image", 0.0, 0.0, "failing_feature", "post_processing"
            ),
        )
    assert pipeline.pop_flags_off() == {"allow_post_processing"}
    assert pipeline.offer(["Healthy"]) == ["Healthy"]
    assert Subject("post_processing", feature=True) in pipeline.guard.breaker.withdrawn


async def test_an_unknown_feature_from_a_child_counts_as_the_jobs_own_fault() -> None:
    pipeline, _ = _pipeline(1)
    handle = pipeline.slots.slots[0].handle
    assert handle is not None
    for key in ("x1", "x2"):
        pipeline.job_popped(_job(key, "Healthy"), time.monotonic())
        pipeline.on_child_message(handle, JobFailed(1, key, "odd", 0.0, 0.0, "failing_feature", "teleportation"))
    assert pipeline.guard.breaker.withdrawn == {} and pipeline.pop_flags_off() == frozenset()
