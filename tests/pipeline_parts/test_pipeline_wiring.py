"""The pipeline's parts wired together over in-process children: one job's path, losses, watchdogs, abort.

Its jobs are popped from a local horde and reported to it by the worker's `Submitter`. The test plays the
children (each held from its start): it reads what the pipeline sent them and says their answers. It
waits on the event log and on what it said being delivered, never on the clock.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import PoppedJob, bridge_agent, build_pop_request, parse_pop_answer
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.jobs.events import Event
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import Generated, ImageVerdict
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.entities import ProcessingGeneration, SubmitAttempt, User
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.models.post_processor_files import MANAGED_POST_PROCESSORS
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.lifecycle import SlotState
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.pipeline.submitter import Submitter
from horde_worker_regen.processes.handle import ChildHandle
from horde_worker_regen.processes.in_process import InProcessChildren, InProcessHandle
from horde_worker_regen.processes.messages import (
    CheckImages,
    JobDone,
    JobProgress,
    ModelPreloaded,
    Preload,
    RunJob,
    SafetyChecked,
)
from tests.horde.inprocess_worker import no_wait
from tests.jobs.conftest import webp_bytes
from tests.pipeline_parts.children import (
    LIVENESS_S,
    WAIT_S,
    child_named,
    fake_data,
    inference_specs,
    safety_spec,
    sent_to,
    started,
)
from tests.worker_support import MODEL, QUIET_HORDE, queue

IMAGE = webp_bytes()  # what the test's inference child generates

pytestmark = pytest.mark.usefixtures("no_backoff")


@dataclass
class Rig:
    """A started pipeline, the children it runs, the horde it pops from and reports to, what it called fatal."""

    pipeline: Pipeline
    children: InProcessChildren
    horde: RunningLocalHorde
    requester: User
    client: HordeClient
    data: BridgeData
    fatal: list[str]
    keys: dict[str, str] = field(default_factory=dict)  # the test's name of each job -> its key (its horde id)

    async def pop(self, *names: str) -> list[JobRecord]:
        """Queue one request per name and pop its job from the horde, then hand them all to the pipeline."""
        popped: list[PoppedJob] = []
        for name in names:
            queue(self.horde, self.requester, "a fox", width=64, height=64, steps=2)
            answer = parse_pop_answer(await self.client.pop(build_pop_request(self.data, [MODEL], bridge_agent(1))))
            assert isinstance(answer, PoppedJob)
            self.keys[name] = answer.spec.job_key
            popped.append(answer)
        return [self.pipeline.job_popped(job, time.monotonic()) for job in popped]

    def name_of(self, key: str | None) -> str:
        """The test's name of the job `key`."""
        return next(name for name, known in self.keys.items() if known == key)

    def sent_to(self, kind: type[Any]) -> list[tuple[str, str]]:
        """(child name, job name) of each message of one kind sent so far."""
        return [(child, self.name_of(_key_of(message))) for child, message in sent_to(self.children, kind)]

    def running(self, name: str) -> InProcessHandle:
        """The child the job was last sent to."""
        sent = [child for child, message in sent_to(self.children, RunJob) if message.spec.job_key == self.keys[name]]
        return child_named(self.children, sent[-1])

    def done(self, handle: ChildHandle, name: str) -> JobDone:
        """The answer of an inference child that generated the job's image."""
        return JobDone(handle.incarnation, self.keys[name], Generated((IMAGE,), 1.0, 2.0))

    async def event(self, kind: str, name: str | None = None, **fields: Any) -> Event:
        """The first event of a kind (for a job, with these fields), kept or to come."""

        def wanted(event: Event) -> bool:
            of_job = name is None or event.job == self.keys[name]
            return event.kind == kind and of_job and all(event.fields.get(k) == v for k, v in fields.items())

        return await self.pipeline.events.wait_for(wanted, WAIT_S)

    def generation(self, name: str) -> ProcessingGeneration:
        """The job as the horde knows it."""
        return self.horde.state.generations[self.keys[name]]


def _key_of(message: Any) -> str:
    return str(message.spec.job_key if isinstance(message, RunJob) else message.job_key)


def _pipeline(
    data: BridgeData, children: InProcessChildren, client: HordeClient, limits: StageLimits | None, fatal: list[str]
) -> Pipeline:
    """A pipeline with the worker's child specs (one slot) reporting to the horde; nothing started."""
    settings = PipelineSettings.from_bridge_data(data)
    if limits is not None:
        settings = replace(settings, inference=replace(settings.inference, gpu_limits=limits, cpu_limits=limits))
    services = PipelineServices(
        supervisor=children,
        registry=JobRegistry(),
        stats=WorkerStats(),
        submitter=Submitter(client, sleep=no_wait),
        fetcher=InputFetcher(client, sleep=no_wait, guard=UrlGuard.for_horde(data.horde_url, True)),
        events=children.events,
    )
    specs = ChildSpecs(safety_spec(data), inference_specs(1, data))
    return Pipeline(settings, services, specs, on_fatal=fatal.append)


MakeRig = Callable[..., Awaitable[Rig]]


@pytest_asyncio.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    """Starts rigs on one local horde; each is aborted at the end of the test (its reports settled).

    `held=False`: the children started with the pipeline are not held (they run their work); `limits`:
    the stage limits; other options are the worker's settings."""
    async with contextlib.AsyncExitStack() as stack:
        horde = await stack.enter_async_context(serve_local_horde(QUIET_HORDE, clock=FakeClock()))
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        client = HordeClient(session, horde.api_url, owner.api_key)
        rigs: list[Rig] = []

        async def make(*, held: bool = True, limits: StageLimits | None = None, **settings: Any) -> Rig:
            data = fake_data(api_key=owner.api_key, horde_url=horde.api_url, dreamer_name="Parts Dreamer", **settings)
            children, fatal = InProcessChildren(liveness_timeout=LIVENESS_S), list[str]()
            children.hold_new_children(held)
            pipeline = _pipeline(data, children, client, limits, fatal)
            await pipeline.start_children()
            rigs.append(Rig(pipeline, children, horde, requester, client, data, fatal))
            return rigs[-1]

        yield make
        for rig in rigs:
            await rig.pipeline.abort(WAIT_S)


async def test_a_job_goes_from_pop_through_inference_and_safety_to_its_submit(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await rig.pop("a")
    handle = rig.running("a")
    await rig.children.say(handle, JobProgress(handle.incarnation, rig.keys["a"], 1, 2))
    assert rig.pipeline.slots.slots[0].step == 1
    await rig.children.say(handle, rig.done(handle, "a"))
    [(safety, check)] = sent_to(rig.children, CheckImages)
    assert safety == "safety#1" and check.request.images == (IMAGE,)
    checker = child_named(rig.children, safety)
    await rig.children.say(checker, SafetyChecked(checker.incarnation, rig.keys["a"], (ImageVerdict(False, False),)))
    ended = await rig.event("job_ended", "a")
    assert ended.fields["state"] == "submitted"
    assert rig.horde.state.submit_attempts[rig.keys["a"]] == [SubmitAttempt("ok", applied=True)]
    stored = rig.horde.state.objects.get(GENERATIONS_BUCKET, f"{rig.keys['a']}.webp")
    assert rig.generation("a").is_completed and stored is not None and stored.data == IMAGE
    kinds = [event.kind for event in rig.pipeline.events.of_job(rig.keys["a"])]
    assert kinds == ["job_popped", "job_queued", "job_started", "stage_started", "inference_finished",
                     "job_checked", "job_ended"]  # fmt: skip


async def test_the_pipeline_says_which_level_13_post_processors_its_children_can_run(make_rig: MakeRig) -> None:
    rig = await make_rig()
    assert rig.pipeline.servable_post_processors() == MANAGED_POST_PROCESSORS  # as the fake child reported


async def test_a_freed_slot_gets_its_next_job_before_the_finished_one_goes_to_safety(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await rig.pop("a", "b")
    handle = rig.running("a")
    await rig.children.say(handle, rig.done(handle, "a"))
    order = [(type(message).__name__, rig.name_of(_key_of(message))) for _, message in rig.children.sent]
    assert order[-2:] == [("RunJob", "b"), ("CheckImages", "a")]
    assert rig.sent_to(RunJob) == [("inference-1#2", "a"), ("inference-1#2", "b")]


async def test_a_job_whose_child_is_lost_is_retried_on_a_fresh_child(make_rig: MakeRig) -> None:
    rig = await make_rig()
    [record] = await rig.pop("a")
    rig.children.crash(rig.running("a"), -signal.SIGKILL)
    retried = await rig.event("job_retried", "a")
    assert retried.fields == {"attempt": 1, "reason": "the inference process was lost (it exited with code -9)"}
    again = await rig.event("job_started", "a", attempt=1)
    fresh = rig.running("a")
    assert again.fields["child"] == fresh.name and fresh.incarnation == 3
    assert [message.spec.attempt for _, message in sent_to(rig.children, RunJob)] == [0, 1]
    assert record.state is JobState.RUNNING and record.slot_incarnation == 3


async def test_a_child_stuck_in_a_stage_is_killed_and_its_job_retried(make_rig: MakeRig) -> None:
    rig = await make_rig(limits=StageLimits(load=0.05, step=0.05, post_process=0.05))
    await rig.pop("a")
    stuck = rig.running("a")
    killed = await rig.event("child_killed", "a")
    assert killed.fields["reason"] == "inference-1#2 spent more than 0s loading its model and was killed"
    assert stuck.process.exitcode == -signal.SIGTERM and stuck not in rig.children.children  # killed, not stopped
    await rig.event("job_retried", "a")


async def test_a_job_lost_on_every_process_strikes_its_model(make_rig: MakeRig) -> None:
    rig = await make_rig(job_retries=0)
    await rig.pop("a")
    rig.children.crash(rig.running("a"), -signal.SIGKILL)
    faulted = await rig.event("job_faulted", "a")
    assert faulted.fields["cause"] == f"crashing_model: model '{MODEL}'"
    assert "it was lost with every process it ran on (1)" in faulted.fields["reason"]


async def test_a_recycled_child_preloads_its_model_before_the_slot_takes_the_next_job(make_rig: MakeRig) -> None:
    rig = await make_rig(held=False, recycle_process_after_jobs=1)  # the first child runs its job
    rig.children.hold_new_children()  # its replacement is played by the test
    first = child_named(rig.children, "inference-1#2")
    await rig.pop("a", "b")
    assert (await rig.event("child_recycled")).fields["child"] == "inference-1#2"
    fresh = await started(rig.children, "inference-1#3")
    slot = rig.pipeline.slots.slots[0]
    assert first.process.exitcode == 0 and slot.state is SlotState.PRELOADING  # stopped: it exited cleanly
    assert [(child, message.model) for child, message in sent_to(rig.children, Preload)] == [(fresh.name, MODEL)]
    assert rig.sent_to(RunJob) == [("inference-1#2", "a")]  # b waits for the preload
    await rig.children.say(fresh, ModelPreloaded(fresh.incarnation, MODEL))
    assert rig.sent_to(RunJob)[-1] == ("inference-1#3", "b")


async def test_when_every_slot_is_out_of_service_the_worker_stops_and_queued_jobs_are_faulted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    await rig.pop("a", "b")
    rig.children.fail_next_starts(3)
    rig.children.crash(rig.running("a"), -signal.SIGKILL)
    faulted = await rig.event("job_faulted", "b")
    assert faulted.fields["reason"] == "no inference process is available"
    assert rig.fatal == ["every inference slot is out of service (their processes keep failing to start)"]
    assert rig.pipeline.slots.slots[0].state is SlotState.OUT_OF_SERVICE


async def test_abort_faults_every_job_not_yet_reporting_and_takes_the_slots_down(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await rig.pop("a", "b")
    await rig.pipeline.abort(grace=WAIT_S)
    for name in ("a", "b"):
        assert rig.horde.state.submit_attempts[rig.keys[name]] == [SubmitAttempt("faulted", applied=True)]
        assert rig.generation(name).faulted
    assert len(rig.pipeline.registry) == 0
    assert [slot.state for slot in rig.pipeline.slots.slots] == [SlotState.DOWN]
    reasons = {rig.name_of(event.job): event.fields["reason"] for event in rig.pipeline.events.of_kind("job_faulted")}
    assert reasons == {
        "a": "the worker was stopped before it finished",
        "b": "the worker was stopped before it finished",
    }
