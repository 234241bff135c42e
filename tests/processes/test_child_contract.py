"""The child client contract, one test body for both clients: the process `Supervisor` (real spawned
inference children) and `InProcessChildren` (the same children's cores on threads of this process).

What the pipeline counts on: `start` returns a ready child that answers jobs; a crash is reported once;
a kill is not reported; nothing from a replaced incarnation arrives; a silent child is lost after its
liveness timeout; a child that cannot build its backend does not start, saying why. What a test does to
a process (SIGKILL, SIGSTOP) and what it asks of `InProcessChildren` (`crash`, `freeze`) read the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.fake import CRASH_EXIT_CODE
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.in_process import InProcessChildren, InProcessHandle
from horde_worker_regen.processes.inference_child import InferenceChildConfig, inference_main
from horde_worker_regen.processes.messages import ChildMessage, JobDone, JobStage, RunJob
from horde_worker_regen.processes.supervisor import Supervisor
from tests.processes.test_supervisor import Recorder

TIMEOUT = 30.0
LIVENESS_S = 1.0
FAKE = FakeBackendSettings(seconds_per_job=0.0, slow_seconds=0.3)
SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 64, 64, 4, 1, 5, "k_euler", 5.0, True, None, (), "txt2img")


@dataclass
class Harness:
    """One child client, what it reported, and how a test does things to its children."""

    client: Supervisor | InProcessChildren
    recorder: Recorder
    spec: ChildSpec

    def crash(self, handle: ChildHandle) -> None:
        """The child dies at once, as by SIGKILL."""
        if isinstance(self.client, InProcessChildren):
            self.client.crash(handle, -signal.SIGKILL)
        else:
            os.kill(_pid(handle), signal.SIGKILL)

    def freeze(self, handle: ChildHandle) -> None:
        """The child stops, IO thread and all, as by SIGSTOP."""
        if isinstance(self.client, InProcessChildren):
            self.client.freeze(handle)
        else:
            os.kill(_pid(handle), signal.SIGSTOP)

    def thaw(self, handle: ChildHandle) -> None:
        """Let a stopped child process run again, so the SIGTERM it was sent ends it without a wait."""
        if isinstance(self.client, Supervisor):
            os.kill(_pid(handle), signal.SIGCONT)

    async def gone(self, handle: ChildHandle) -> None:
        """Wait until a killed child can say nothing more: its process reaped, or its thread ended."""
        await asyncio.wait_for(handle.exited.wait(), TIMEOUT)
        if isinstance(handle, InProcessHandle) and handle.process.thread is not None:
            await asyncio.to_thread(handle.process.thread.join, TIMEOUT)

    async def next_message(self) -> tuple[ChildHandle, ChildMessage]:
        return await asyncio.wait_for(self.recorder.messages.get(), TIMEOUT)

    async def answer(self, handle: ChildHandle) -> JobDone:
        """Skip the stage and progress reports up to the job's answer."""
        while True:
            source, message = await self.next_message()
            if isinstance(message, JobDone):
                assert source is handle
                return message


def _pid(handle: ChildHandle) -> int:
    assert handle.process.pid is not None
    return handle.process.pid


def _run(handle: ChildHandle, prompt: str) -> RunJob:
    return RunJob(handle.incarnation, dataclasses.replace(SPEC, prompt=prompt), JobInputs())


def _settings(tmp_path: Path, fake: FakeBackendSettings = FAKE) -> ChildSpec:
    return ChildSpec("inference-1", inference_main, InferenceChildConfig(ChildLogging(tmp_path, 0, 1), "fake", fake))


@pytest_asyncio.fixture(params=["process", "in-process"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind = Supervisor if request.param == "process" else InProcessChildren
    client = kind(liveness_timeout=LIVENESS_S, ping_interval=0.1)
    recorder = Recorder()
    client.bind(lambda h, m: recorder.messages.put_nowait((h, m)), lambda h, r: recorder.lost.put_nowait((h, r)))
    yield Harness(client, recorder, _settings(tmp_path))
    await client.kill_all()


async def test_a_started_child_is_ready_and_answers_a_job(harness: Harness) -> None:
    client = harness.client
    handle = await client.start(harness.spec)
    ready = handle.ready.result()
    assert (ready.incarnation, ready.backend) == (handle.incarnation, "fake")
    assert client.children == {handle}
    [started] = client.events.of_kind("child_started")
    assert started.fields["child"] == handle.name == "inference-1#1"
    assert client.send(handle, _run(handle, "a fox"))
    stages = []
    while not isinstance(message := (await harness.next_message())[1], JobDone):
        if isinstance(message, JobStage):
            stages.append(message.stage)
    assert stages == ["loading_model", "sampling", "encoding"]
    assert message.job_key == "job-1" and len(message.result.images) == 1 and message.result.images[0][:4] == b"RIFF"


@pytest.mark.parametrize("how", ["backend", "sigkill"])
async def test_a_crashed_child_is_reported_lost_once(harness: Harness, how: str) -> None:
    client = harness.client
    handle = await client.start(harness.spec)
    if how == "backend":
        client.send(handle, _run(handle, "a volcano <fake:crash>"))  # the fake backend ends its process
        code = CRASH_EXIT_CODE
    else:
        harness.crash(handle)
        code = -signal.SIGKILL
    lost, reason = await asyncio.wait_for(harness.recorder.lost.get(), TIMEOUT)
    assert lost is handle and reason == f"it exited with code {code}"
    await asyncio.wait_for(handle.exited.wait(), TIMEOUT)
    assert handle.process.exitcode == code and client.children == set()
    assert harness.recorder.lost.empty()
    assert [event.fields["child"] for event in client.events.of_kind("child_lost")] == [handle.name]
    replacement = await client.start(harness.spec)  # the owner replaces it: a new incarnation
    assert replacement.incarnation == handle.incarnation + 1


async def test_a_killed_child_is_not_reported_even_mid_job(harness: Harness) -> None:
    client = harness.client
    handle = await client.start(harness.spec)
    client.send(handle, _run(handle, "a slow fox <fake:slow>"))
    _, first = await harness.next_message()
    assert isinstance(first, JobStage) and first.stage == "loading_model"  # it is busy loading (0.3 s)
    client.kill(handle)
    await harness.gone(handle)
    await client.stop_all()  # every clean-up done: a report, had there been one, would have come by now
    assert harness.recorder.lost.empty() and client.events.of_kind("child_lost") == []
    assert not client.send(handle, _run(handle, "too late"))


async def test_nothing_from_a_replaced_incarnation_arrives(harness: Harness) -> None:
    client = harness.client
    old = await client.start(harness.spec)
    client.send(old, _run(old, "a slow fox <fake:slow>"))  # it would answer 0.6 s later
    _, first = await harness.next_message()
    assert isinstance(first, JobStage)
    client.kill(old)
    await harness.gone(old)  # whatever the old one still had to say has been said (or could not be)
    new = await client.start(harness.spec)
    client.send(new, _run(new, "a quick fox"))
    answer = await harness.answer(new)
    assert answer.incarnation == new.incarnation
    assert harness.recorder.messages.empty()


async def test_a_frozen_child_is_lost_once_its_liveness_timeout_passes(harness: Harness) -> None:
    client = harness.client
    handle = await client.start(harness.spec)
    client.start_heartbeat()
    harness.freeze(handle)
    frozen_at = asyncio.get_running_loop().time()
    lost, reason = await asyncio.wait_for(harness.recorder.lost.get(), TIMEOUT)
    harness.thaw(handle)
    assert lost is handle and reason.startswith("no sign of life for ")
    assert asyncio.get_running_loop().time() - frozen_at >= LIVENESS_S - 0.1  # not before its deadline
    await asyncio.wait_for(handle.exited.wait(), TIMEOUT)  # it was ended too
    assert harness.recorder.lost.empty()


async def test_a_child_that_cannot_build_its_backend_fails_to_start_saying_why(
    harness: Harness, tmp_path: Path
) -> None:
    failing = _settings(tmp_path, FAKE.model_copy(update={"fail_start_from_incarnation": 1}))
    with pytest.raises(ChildStartError, match=r"inference-1#1: InferenceError: process #1 fails at start-up"):
        await harness.client.start(failing)
    assert harness.client.children == set() and harness.recorder.lost.empty()
