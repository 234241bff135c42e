"""The pipeline's parts wired together, over a fake child client: one job's path, losses, watchdogs, abort.

The test plays the children: it reads what the pipeline sent and answers through the bound callbacks.
It waits on the event log and on futures, never on the clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import pytest_asyncio

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.events import Event
from horde_worker_regen.jobs.record import JobState
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import GenerationSpec, ImageVerdict, SourceRefs
from horde_worker_regen.pipeline.lifecycle import SlotState
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes import restarts
from horde_worker_regen.processes.messages import (
    CheckImages,
    JobDone,
    JobProgress,
    ModelPreloaded,
    Preload,
    RunJob,
    SafetyChecked,
)
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec
from tests.pipeline_parts.fakes import FakeChildren, FakeSubmitter

DATA = BridgeData(api_key="k" * 22, inference_backend="fake")
SAFETY = ChildSpec("safety", print, None)
WAIT_S = 5.0


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "RESTART_BACKOFF_BASE_S", 0.0)


@dataclass
class Rig:
    """A started pipeline, the fake children and submitter behind it, and what it called fatal."""

    pipeline: Pipeline
    children: FakeChildren
    submitter: FakeSubmitter
    fatal: list[str]

    def sent_to(self, kind: type[Any]) -> list[tuple[str, str]]:
        """(child name, job key) of each message of one kind sent so far."""
        return [(handle.name, _key_of(message)) for handle, message in self.children.of_type(kind)]

    def running(self, key: str) -> ChildHandle:
        """The child the job was last sent to."""
        return [handle for handle, message in self.children.of_type(RunJob) if message.spec.job_key == key][-1]

    async def event(self, kind: str, job: str | None = None) -> Event:
        """The first event of a kind (for a job), kept or to come."""
        return await self.pipeline.events.wait_for(
            lambda event: event.kind == kind and (job is None or event.job == job), WAIT_S
        )


def _key_of(message: Any) -> str:
    return str(message.spec.job_key if isinstance(message, RunJob) else message.job_key)


async def start_rig(slots: int = 1, data: BridgeData = DATA, limits: StageLimits | None = None) -> Rig:
    children, submitter, fatal = FakeChildren(), FakeSubmitter(), list[str]()
    settings = PipelineSettings.from_bridge_data(data)
    if limits is not None:
        settings = replace(settings, inference=replace(settings.inference, gpu_limits=limits, cpu_limits=limits))
    fetcher: Any = None  # no job here has inputs to fetch
    services = PipelineServices(children, JobRegistry(), WorkerStats(), submitter, fetcher, events=children.events)
    inference = [ChildSpec(f"inference-{index + 1}", print, None) for index in range(slots)]
    pipeline = Pipeline(settings, services, ChildSpecs(SAFETY, inference), on_fatal=fatal.append)
    await pipeline.start_children()
    return Rig(pipeline, children, submitter, fatal)


@pytest_asyncio.fixture
async def make_rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """Starts rigs; each is aborted at the end of the test (its timers and reports settled)."""
    started: list[Rig] = []

    async def make(**options: Any) -> Rig:
        started.append(await start_rig(**options))
        return started[-1]

    yield make
    for each in started:
        await each.pipeline.abort(WAIT_S)


def job(key: str, model: str = "Deliberate", ttl: int = 300) -> PoppedJob:
    spec = GenerationSpec(key, model, "a fox", 64, 64, 2, 1, 1, "k_euler", 7.0, False, None, (), "txt2img")
    return PoppedJob((key,), (None,), ttl, spec, SourceRefs(), False)


def done(handle: ChildHandle, key: str) -> JobDone:
    return JobDone(handle.incarnation, key, (b"png",), 1.0, 2.0)


async def test_a_job_goes_from_pop_through_inference_and_safety_to_its_submit(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig_ = await make_rig()
    rig_.pipeline.job_popped(job("a"), time.monotonic())
    handle = rig_.running("a")
    rig_.children.on_message(handle, JobProgress(handle.incarnation, "a", 1, 2))
    assert rig_.pipeline.slots.slots[0].step == 1
    rig_.children.on_message(handle, done(handle, "a"))
    [(safety, check)] = rig_.children.of_type(CheckImages)
    assert safety.name == "safety#1" and check.images == (b"png",)
    rig_.children.on_message(safety, SafetyChecked(safety.incarnation, "a", (ImageVerdict(False, False),)))
    ended = await rig_.event("job_ended", "a")
    assert ended.fields["state"] == "submitted" and rig_.submitter.images == ["a"]
    kinds = [event.kind for event in rig_.pipeline.events.of_job("a")]
    assert kinds == ["job_popped", "job_queued", "job_started", "stage_started", "inference_finished",
                     "job_checked", "job_ended"]  # fmt: skip


async def test_a_freed_slot_gets_its_next_job_before_the_finished_one_goes_to_safety(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig_ = await make_rig()
    for key in ("a", "b"):
        rig_.pipeline.job_popped(job(key), time.monotonic())
    handle = rig_.running("a")
    rig_.children.on_message(handle, done(handle, "a"))
    order = [(type(message).__name__, _key_of(message)) for _, message in rig_.children.sent]
    assert order[-2:] == [("RunJob", "b"), ("CheckImages", "a")]
    assert rig_.sent_to(RunJob) == [("inference-1#2", "a"), ("inference-1#2", "b")]


async def test_a_job_whose_child_is_lost_is_retried_on_a_fresh_child(make_rig: Callable[..., Awaitable[Rig]]) -> None:
    rig_ = await make_rig()
    record = rig_.pipeline.job_popped(job("a"), time.monotonic())
    lost = rig_.running("a")
    replacement = rig_.children.next_start()
    rig_.children.on_lost(lost, "it exited with code -9")
    retried = await rig_.event("job_retried", "a")
    assert retried.fields == {"attempt": 1, "reason": "the inference process was lost (it exited with code -9)"}
    fresh = await asyncio.wait_for(replacement, WAIT_S)
    assert rig_.running("a") is fresh and fresh.incarnation == 3
    assert [message.spec.attempt for _, message in rig_.children.of_type(RunJob)] == [0, 1]
    assert record.state is JobState.RUNNING and record.slot_incarnation == 3


async def test_a_child_stuck_in_a_stage_is_killed_and_its_job_retried(make_rig: Callable[..., Awaitable[Rig]]) -> None:
    rig_ = await make_rig(limits=StageLimits(load=0.05, step=0.05, post_process=0.05))
    rig_.pipeline.job_popped(job("a"), time.monotonic())
    stuck = rig_.running("a")
    killed = await rig_.event("child_killed", "a")
    assert killed.fields["reason"] == "inference-1#2 spent more than 0s loading its model and was killed"
    assert rig_.children.killed == [stuck]
    await rig_.event("job_retried", "a")


async def test_a_job_lost_on_every_process_strikes_its_model(make_rig: Callable[..., Awaitable[Rig]]) -> None:
    rig_ = await make_rig(data=BridgeData(api_key="k" * 22, inference_backend="fake", job_retries=0))
    rig_.pipeline.job_popped(job("a"), time.monotonic())
    rig_.children.on_lost(rig_.running("a"), "it exited with code -9")
    faulted = await rig_.event("job_faulted", "a")
    assert faulted.fields["cause"] == "crashing_model: model 'Deliberate'"
    assert "it was lost with every process it ran on (1)" in faulted.fields["reason"]


async def test_a_recycled_child_preloads_its_model_before_the_slot_takes_the_next_job(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig_ = await make_rig(data=BridgeData(api_key="k" * 22, inference_backend="fake", recycle_process_after_jobs=1))
    for key in ("a", "b"):
        rig_.pipeline.job_popped(job(key), time.monotonic())
    first = rig_.running("a")
    replacement = rig_.children.next_start()
    rig_.children.on_message(first, done(first, "a"))
    assert (await rig_.event("child_recycled")).fields["child"] == "inference-1#2"
    fresh = await asyncio.wait_for(replacement, WAIT_S)
    slot = rig_.pipeline.slots.slots[0]
    assert rig_.children.stopped == [first] and slot.state is SlotState.PRELOADING
    assert [(handle, message.model) for handle, message in rig_.children.of_type(Preload)] == [(fresh, "Deliberate")]
    assert rig_.sent_to(RunJob) == [("inference-1#2", "a")]  # b waits for the preload
    rig_.children.on_message(fresh, ModelPreloaded(fresh.incarnation, "Deliberate"))
    assert rig_.sent_to(RunJob)[-1] == ("inference-1#3", "b")


async def test_when_every_slot_is_out_of_service_the_worker_stops_and_queued_jobs_are_faulted(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig_ = await make_rig()
    rig_.pipeline.job_popped(job("a"), time.monotonic())
    rig_.pipeline.job_popped(job("b"), time.monotonic())
    rig_.children.failing_starts = 3
    rig_.children.on_lost(rig_.running("a"), "it exited with code -9")
    faulted = await rig_.event("job_faulted", "b")
    assert faulted.fields["reason"] == "no inference process is available"
    assert rig_.fatal == ["every inference slot is out of service (their processes keep failing to start)"]
    assert rig_.pipeline.slots.slots[0].state is SlotState.OUT_OF_SERVICE


async def test_abort_faults_every_job_not_yet_reporting_and_takes_the_slots_down(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig_ = await make_rig()
    for key in ("a", "b"):
        rig_.pipeline.job_popped(job(key), time.monotonic())
    await rig_.pipeline.abort(grace=WAIT_S)
    assert sorted(rig_.submitter.faults) == ["a", "b"] and len(rig_.pipeline.registry) == 0
    assert [slot.state for slot in rig_.pipeline.slots.slots] == [SlotState.DOWN]
    reasons = {event.job: event.fields["reason"] for event in rig_.pipeline.events.of_kind("job_faulted")}
    assert reasons == {
        "a": "the worker was stopped before it finished",
        "b": "the worker was stopped before it finished",
    }
