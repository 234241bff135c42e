"""The pipeline's fault path through the fault breaker, its children in this process: what is run,
faulted, offered. A missing model fails in the fake backend itself; the feature faults, which the fake
cannot produce, are said by the test in the inference child's place."""

from __future__ import annotations

import time

from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.spec import FailureKind, GenerationFailed
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.processes.messages import JobFailed
from horde_worker_regen.scheduling.breaker import Subject
from tests.jobs.conftest import PipelineFactory
from tests.jobs.test_pipeline_intake import TIMEOUT, _is, _job, _jobs, key_of, name_of


async def test_two_missing_model_faults_withdraw_the_model_and_settle_its_queued_jobs(
    pipelines: PipelineFactory,
) -> None:
    pipeline, _ = await pipelines(1, fault_breaker_cooldown=30, fake_backend={"missing_models": ["Broken"]})
    offered_after_one_strike: list[list[str]] = []

    def on_change(record: JobRecord, previous: JobState) -> None:
        if record.key == key_of("b1") and record.state is JobState.UPLOADING:  # its fault counted
            offered_after_one_strike.append(pipeline.offer(["Healthy", "Broken"]))

    pipeline.registry.subscribe(on_change)
    now = time.monotonic()
    for key, model in (("b1", "Broken"), ("b2", "Broken"), ("h1", "Healthy"), ("b3", "Broken")):
        pipeline.job_popped(_job(key_of(key), model), now)
    for key in ("b1", "b2", "h1", "b3"):
        await pipeline.events.wait_for(_is("job_ended", key), TIMEOUT)
    # One strike: the next job of the model runs and settles it; no more of it is popped meanwhile.
    assert offered_after_one_strike == [["Healthy"]]
    # Withdrawn: its queued job is faulted without running, the healthy one runs.
    assert _jobs(pipeline, "job_started") == ["b1", "b2", "h1"]
    faults = {name_of(event.job): event.fields for event in pipeline.events.of_kind("job_faulted")}
    assert set(faults) == {"b1", "b2", "b3"}
    assert faults["b1"]["cause"] == faults["b2"]["cause"] == "missing_model: model 'Broken'"
    assert "withdrawn" in faults["b3"]["reason"]
    [withdrawn] = pipeline.events.of_kind("subject_withdrawn")
    assert name_of(withdrawn.job) == "b2" and withdrawn.fields["subject"] == "model 'Broken'"
    assert pipeline.offer(["Healthy", "Broken"]) == ["Healthy"]
    status = pipeline.guard.status()
    assert [(w["subject"], w["kind"]) for w in status["withdrawn"]] == [("Broken", "missing_model")]
    assert 0 < status["withdrawn"][0]["remaining_s"] <= 30 * 60
    # Served alone, a withdrawn model leaves nothing to offer: popping stops, the worker keeps running.
    assert pipeline.offer(["Broken"]) == [] and pipeline.guard.popping_stopped
    assert pipeline.guard.status()["popping_stopped"] is True
    assert 0 < (pipeline.reopens_in() or 0) <= 30 * 60


async def _failed_twice(pipelines: PipelineFactory, kind: FailureKind, subject: str, reason: str) -> Pipeline:
    """A pipeline whose inference child answered each of two jobs with a failure of `kind` about `subject`."""
    pipeline, children = await pipelines(1, hold=True)
    handle = pipeline.slots.slots[0].handle
    assert handle is not None
    for key in ("x1", "x2"):
        pipeline.job_popped(_job(key_of(key), "Healthy"), time.monotonic())
        children.say(
            handle, JobFailed(handle.incarnation, key_of(key), GenerationFailed(reason, 0.0, 0.0, kind, subject))
        )
        await pipeline.events.wait_for(_is("job_faulted", key), TIMEOUT)
    return pipeline


async def test_a_failing_post_processor_turns_post_processing_off(pipelines: PipelineFactory) -> None:
    reason = "post-processor GFPGAN produced no image"
    pipeline = await _failed_twice(pipelines, "failing_feature", "post_processing", reason)
    assert pipeline.pop_flags_off() == {"allow_post_processing"}
    assert pipeline.offer(["Healthy"]) == ["Healthy"]
    assert Subject("post_processing", feature=True) in pipeline.guard.breaker.withdrawn
    assert _jobs(pipeline, "subject_withdrawn") == ["x2"]


async def test_an_unknown_feature_from_a_child_counts_as_the_jobs_own_fault(pipelines: PipelineFactory) -> None:
    pipeline = await _failed_twice(pipelines, "failing_feature", "teleportation", "odd")
    assert pipeline.guard.breaker.withdrawn == {} and pipeline.pop_flags_off() == frozenset()
    assert pipeline.events.of_kind("subject_withdrawn") == []
    assert {event.fields["cause"] for event in pipeline.events.of_kind("job_faulted")} == {"transient: model 'Healthy'"}
