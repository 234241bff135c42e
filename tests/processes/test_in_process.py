"""`InProcessChildren` on its own: what it runs, what it refuses, and what its test hooks do.

The contract it shares with the process supervisor is in `test_child_contract.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from horde_worker_regen.config.sections import FakeBackendSettings, FakeDevice, FakeSafetySettings
from horde_worker_regen.inference.fake import POISON_EXIT_CODE
from horde_worker_regen.jobs.spec import CensorPolicy, Generated, ImagesToCheck, JobInputs
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildSpec, ChildStartError
from horde_worker_regen.processes.in_process import InProcessChildren, InProcessHandle
from horde_worker_regen.processes.inference_child import InferenceChildConfig, inference_main
from horde_worker_regen.processes.messages import (
    CheckImages,
    JobDone,
    JobProgress,
    ModelPreloaded,
    Preload,
    RunJob,
    SafetyChecked,
)
from horde_worker_regen.processes.safety_child import SafetyChildConfig, safety_main
from tests.processes.test_child_contract import SPEC, TIMEOUT
from tests.processes.test_supervisor import Recorder

LOGGING = ChildLogging(Path("logs"), 0, 1)


def _inference(fake: FakeBackendSettings | None = None, backend: str = "fake", device: int | None = None) -> ChildSpec:
    config = InferenceChildConfig(LOGGING, backend, fake or FakeBackendSettings(seconds_per_job=0.0), None, device)
    return ChildSpec("inference-1", inference_main, config)


@pytest_asyncio.fixture
async def children() -> AsyncIterator[tuple[InProcessChildren, Recorder]]:
    client = InProcessChildren(liveness_timeout=1.0, ping_interval=0.1)
    recorder = Recorder()
    client.bind(lambda h, m: recorder.messages.put_nowait((h, m)), lambda h, r: recorder.lost.put_nowait((h, r)))
    yield client, recorder
    await client.kill_all()


async def _answer(recorder: Recorder) -> object:
    """The next message that is not a stage or progress report."""
    while True:
        _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
        if not isinstance(message, JobProgress) and type(message).__name__ != "JobStage":
            return message


async def test_a_real_backend_is_refused_before_anything_is_imported(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, _ = children
    before = set(sys.modules)
    with pytest.raises(ChildStartError, match=r"inference-1: the 'hordelib' backend cannot run in this process"):
        await client.start(_inference(backend="hordelib"))
    safety = SafetyChildConfig(LOGGING, "horde_safety", FakeSafetySettings())
    with pytest.raises(ChildStartError, match=r"safety: the 'horde_safety' backend cannot run in this process"):
        await client.start(ChildSpec("safety", safety_main, safety))
    with pytest.raises(ChildStartError, match="inference or safety children, not str"):
        await client.start(ChildSpec("odd", print, "a config of no known kind"))
    assert not {name for name in set(sys.modules) - before if name.startswith(("hordelib", "torch", "horde_safety"))}
    assert client.children == set()


async def test_the_safety_child_checks_images_with_the_fake_safety_backend(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    config = SafetyChildConfig(LOGGING, "fake", FakeSafetySettings())
    handle = await client.start(ChildSpec("safety", safety_main, config))
    policy = CensorPolicy(censor_nsfw=True)
    client.send(
        handle,
        CheckImages(handle.incarnation, ImagesToCheck("job-1", "a statue <fake:nsfw>", 64, 64, (b"x", b"y"), policy)),
    )
    answer = await _answer(recorder)
    assert isinstance(answer, SafetyChecked) and answer.job_key == "job-1"
    assert [(verdict.is_nsfw, verdict.censorship) for verdict in answer.verdicts] == [(True, "nsfw")] * 2


async def test_answers_arrive_on_the_event_loop_from_the_childs_own_thread(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, _ = children
    seen: list[tuple[str, str]] = []
    done = asyncio.Event()

    def on_message(handle: object, message: object) -> None:
        seen.append((type(message).__name__, threading.current_thread().name))
        if isinstance(message, JobDone):
            done.set()

    client.bind(on_message, lambda handle, reason: None)
    handle = await client.start(_inference())
    assert handle.process.pid is None and handle.ready.result().pid == os.getpid()
    assert client.send(handle, RunJob(handle.incarnation, SPEC, JobInputs()))
    assert seen == []  # nothing is delivered while `send` runs: only on a later turn of the loop
    await asyncio.wait_for(done.wait(), TIMEOUT)
    assert {thread for _, thread in seen} == {threading.main_thread().name}
    assert isinstance(handle, InProcessHandle) and handle.process.thread is not None
    assert handle.process.thread.name == "inference-1#1 work" and handle.process.thread.is_alive()


async def test_a_hung_job_blocks_only_its_thread_and_kill_returns_at_once(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    hung = await client.start(_inference())
    client.send(hung, RunJob(hung.incarnation, dataclasses.replace(SPEC, prompt="a clock <fake:hang>"), JobInputs()))
    while not isinstance((await asyncio.wait_for(recorder.messages.get(), TIMEOUT))[1], JobProgress):
        pass  # half of its steps are reported, then it hangs for good
    client.kill(hung)
    assert hung.exited.is_set() and hung.process.exitcode == -15
    assert isinstance(hung, InProcessHandle) and hung.process.thread is not None
    assert hung.process.thread.daemon and hung.process.thread.is_alive()  # abandoned, stuck where it hung
    other = await client.start(_inference())  # the loop and the other children go on
    client.send(other, RunJob(other.incarnation, SPEC, JobInputs()))
    while isinstance(answer := await _answer(recorder), JobProgress):
        pass
    assert isinstance(answer, JobDone) and answer.incarnation == other.incarnation
    assert recorder.lost.empty()


async def test_a_message_of_another_incarnation_is_dropped(children: tuple[InProcessChildren, Recorder]) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    assert isinstance(handle, InProcessHandle)
    handle.process.post(JobDone(handle.incarnation + 1, "impostor", Generated((b"x",), 0.0, 0.0)))
    client.send(handle, RunJob(handle.incarnation, SPEC, JobInputs()))
    answer = await _answer(recorder)
    assert isinstance(answer, JobDone) and answer.job_key == "job-1"


async def test_the_next_starts_can_be_made_to_fail(children: tuple[InProcessChildren, Recorder]) -> None:
    client, recorder = children
    client.fail_next_starts(2, "no GPU here")
    for incarnation in (1, 2):
        with pytest.raises(ChildStartError, match=rf"inference-1#{incarnation}: RuntimeError: no GPU here"):
            await client.start(_inference())
    handle = await client.start(_inference())
    assert handle.incarnation == 3 and recorder.lost.empty()


async def test_a_child_pinned_to_a_simulated_gpu_reports_it(children: tuple[InProcessChildren, Recorder]) -> None:
    client, _ = children
    fake = FakeBackendSettings(devices=[FakeDevice(name="Fake RTX", vram_mb=8192)])
    handle = await client.start(_inference(fake, device=0))
    device = handle.ready.result().device
    assert device is not None and (device.index, device.name, device.total_mb) == (0, "Fake RTX", 8192)
    with pytest.raises(ChildStartError, match="there is no GPU 1"):
        await client.start(_inference(fake, device=1))


async def test_a_poison_model_preload_ends_the_child_not_the_test_process(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    handle = await client.start(_inference(FakeBackendSettings(poison_models=["Poisoned"])))
    client.send(handle, Preload(handle.incarnation, "Deliberate"))
    assert await _answer(recorder) == ModelPreloaded(handle.incarnation, "Deliberate")
    client.send(handle, Preload(handle.incarnation, "Poisoned"))
    lost, reason = await asyncio.wait_for(recorder.lost.get(), TIMEOUT)
    assert lost is handle and reason == f"it exited with code {POISON_EXIT_CODE}"


async def test_stop_lets_the_child_finish_and_exit_cleanly(children: tuple[InProcessChildren, Recorder]) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    await client.stop(handle)
    assert handle.process.exitcode == 0 and recorder.lost.empty()
    assert isinstance(handle, InProcessHandle) and handle.process.thread is not None
    # Its exit is reported from the thread's last lines: the thread itself ends just after.
    await asyncio.to_thread(handle.process.thread.join, TIMEOUT)
    assert not handle.process.thread.is_alive()


async def test_a_stop_that_times_out_on_a_hung_job_kills_the_child(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    client.send(handle, RunJob(handle.incarnation, dataclasses.replace(SPEC, prompt="<fake:hang>"), JobInputs()))
    await client.stop(handle, timeout=0.2)
    assert handle.process.exitcode == -15 and recorder.lost.empty()


async def test_a_held_child_takes_work_but_starts_none_and_answers_what_the_test_says(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    client.start_heartbeat()
    client.hold(handle)
    client.send(handle, RunJob(handle.incarnation, SPEC, JobInputs()))
    client.say(handle, JobDone(handle.incarnation, "job-1", Generated((b"said",), 0.0, 0.0)))
    answer = await _answer(recorder)
    assert isinstance(answer, JobDone) and answer.result.images == (b"said",)  # the held job never ran
    assert client.sent[-1] == ("inference-1#1", RunJob(handle.incarnation, SPEC, JobInputs()))
    client.hold(handle, held=False)  # the held job now runs
    answer = await _answer(recorder)
    assert isinstance(answer, JobDone) and answer.result.images != (b"said",)
    assert recorder.lost.empty() and client.children == {handle}  # pongs went on while it held


async def test_a_held_childs_thread_ends_when_it_is_killed(children: tuple[InProcessChildren, Recorder]) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    assert isinstance(handle, InProcessHandle) and handle.process.thread is not None
    client.hold(handle)
    client.send(handle, RunJob(handle.incarnation, SPEC, JobInputs()))
    client.kill(handle)
    await asyncio.to_thread(handle.process.thread.join, TIMEOUT)
    assert not handle.process.thread.is_alive() and recorder.messages.empty()


async def test_a_said_message_can_be_awaited_until_the_owner_has_had_it(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    handle = await client.start(_inference())
    said = JobDone(handle.incarnation, "job-1", Generated((b"said",), 0.0, 0.0))
    delivered = client.say(handle, said)
    assert not delivered.done() and recorder.messages.empty()  # it arrives on a later turn of the loop
    await asyncio.wait_for(delivered, TIMEOUT)
    assert recorder.messages.get_nowait() == (handle, said)
    client.freeze(handle)
    await asyncio.wait_for(client.say(handle, said), TIMEOUT)  # dropped by a frozen child: done all the same
    assert recorder.messages.empty()


async def test_children_started_while_new_ones_are_held_are_held_from_their_start(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    before = await client.start(_inference())
    client.hold_new_children()
    held = await client.start(_inference())
    client.hold_new_children(held=False)
    after = await client.start(_inference())
    assert isinstance(before, InProcessHandle) and isinstance(after, InProcessHandle)
    assert isinstance(held, InProcessHandle)
    assert (before.process.held, held.process.held, after.process.held) == (False, True, False)
    client.send(held, RunJob(held.incarnation, SPEC, JobInputs()))
    client.hold(held, held=False)
    answer = await _answer(recorder)
    assert isinstance(answer, JobDone) and answer.incarnation == held.incarnation


async def test_a_held_start_comes_up_only_once_released_and_a_start_given_up_meanwhile_never(
    children: tuple[InProcessChildren, Recorder],
) -> None:
    client, recorder = children
    client.hold_starts()
    starting = asyncio.create_task(client.start(_inference()))
    handle = await asyncio.wait_for(client.held_start(), TIMEOUT)
    assert not starting.done() and not handle.ready.done() and handle.process.thread is None
    cancelled = asyncio.create_task(client.start(_inference()))
    given_up = await asyncio.wait_for(client.held_start(), TIMEOUT)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert given_up.process.exitcode == -15 and given_up not in client.children  # the cancelled start ended it
    assert client.release_starts() == [handle]
    assert await asyncio.wait_for(starting, TIMEOUT) is handle
    assert given_up.process.thread is None  # it never ran
    third = await client.start(_inference())  # starts are no longer held
    assert third.incarnation == 3 and client.children == {handle, third} and recorder.lost.empty()
