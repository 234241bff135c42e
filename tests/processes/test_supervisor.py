"""The real supervisor with real `spawn` children that do nothing useful."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.messages import ChildMessage, JobDone, JobProgress, RunJob
from horde_worker_regen.processes.supervisor import ProcessHandle, Supervisor
from tests.processes import targets

TIMEOUT = 30.0


@dataclass
class Recorder:
    """What the supervisor reported, with a queue to wait on."""

    messages: asyncio.Queue[tuple[ChildHandle, ChildMessage]] = field(default_factory=asyncio.Queue)
    lost: asyncio.Queue[tuple[ChildHandle, str]] = field(default_factory=asyncio.Queue)


@pytest_asyncio.fixture
async def supervised() -> AsyncIterator[tuple[Supervisor, Recorder]]:
    supervisor = Supervisor(liveness_timeout=1.0, ping_interval=0.1)
    recorder = Recorder()
    supervisor.bind(lambda h, m: recorder.messages.put_nowait((h, m)), lambda h, r: recorder.lost.put_nowait((h, r)))
    yield supervisor, recorder
    await supervisor.kill_all()


def _job(prompt: str, incarnation: int) -> RunJob:
    spec = GenerationSpec("job-1", "m", prompt, 64, 64, 1, 1, 0, "k_euler", 5.0, True, None, (), "txt2img")
    return RunJob(incarnation, spec, JobInputs())


def _echo_spec(tmp_path: Path, name: str = "echo") -> ChildSpec:
    return ChildSpec(name, targets.echo_main, tmp_path)


async def test_a_child_answers_work_and_stops_cleanly(supervised: tuple[Supervisor, Recorder], tmp_path: Path) -> None:
    supervisor, recorder = supervised
    handle = await supervisor.start(_echo_spec(tmp_path))
    assert supervisor.send(handle, _job("hello", handle.incarnation))
    source, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert source is handle and isinstance(message, JobDone) and message.result.images == (b"hello",)
    await supervisor.stop(handle)
    assert handle.process.exitcode == 0
    assert recorder.lost.empty()


async def test_messages_from_another_incarnation_are_dropped(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    handle = await supervisor.start(_echo_spec(tmp_path))
    supervisor.send(handle, _job("impostor", handle.incarnation))
    supervisor.send(handle, _job("genuine", handle.incarnation))
    _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert isinstance(message, JobDone) and message.result.images == (b"genuine",)
    assert recorder.messages.empty()


async def test_a_crashed_child_is_reported_lost_and_can_be_replaced(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    first = await supervisor.start(_echo_spec(tmp_path))
    supervisor.send(first, _job("exit", first.incarnation))
    lost, reason = await asyncio.wait_for(recorder.lost.get(), TIMEOUT)
    assert lost is first and ("exited with code 5" in reason or "pipe closed" in reason)
    second = await supervisor.start(first.spec)
    assert second.incarnation > first.incarnation
    supervisor.send(second, _job("again", second.incarnation))
    _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert isinstance(message, JobDone) and message.incarnation == second.incarnation


async def test_a_child_that_fails_to_start_says_why(supervised: tuple[Supervisor, Recorder], tmp_path: Path) -> None:
    supervisor, _ = supervised
    with pytest.raises(ChildStartError, match="no GPU here"):
        await supervisor.start(ChildSpec("failing", targets.failing_main, tmp_path))


async def test_a_wedged_child_misses_its_liveness_deadline(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    handle = await supervisor.start(ChildSpec("deaf", targets.deaf_main, tmp_path))
    supervisor.start_heartbeat()
    lost, reason = await asyncio.wait_for(recorder.lost.get(), TIMEOUT)
    assert lost is handle and "no sign of life" in reason
    await asyncio.wait_for(handle.exited.wait(), TIMEOUT)  # it was killed


async def test_children_ignore_sigint_so_the_parent_decides(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    handle = await supervisor.start(_echo_spec(tmp_path))
    assert handle.process.pid is not None
    os.kill(handle.process.pid, signal.SIGINT)  # what Ctrl+C sends to the whole process group
    supervisor.send(handle, _job("still here", handle.incarnation))
    _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert isinstance(message, JobDone) and message.result.images == (b"still here",)
    assert recorder.lost.empty()


async def test_a_cancelled_stop_still_ends_the_child(supervised: tuple[Supervisor, Recorder], tmp_path: Path) -> None:
    supervisor, _ = supervised
    handle = await supervisor.start(ChildSpec("deaf", targets.deaf_main, tmp_path))  # never reads its Shutdown
    loop = asyncio.get_running_loop()
    stopping = loop.create_task(supervisor.stop(handle, timeout=TIMEOUT))
    # Callbacks run in order: the task's first step (it sends Shutdown and waits for the exit), then this.
    loop.call_soon(stopping.cancel)  # an abort cancels the recycle waiting in stop()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert handle.stopping  # it was cancelled while it waited, not before it began
    try:
        await asyncio.wait_for(supervisor.kill_all(), TIMEOUT)
        assert not handle.process.is_alive()
    finally:
        if handle.process.is_alive():
            handle.process.kill()


async def _starting_child(
    supervisor: Supervisor, recorder: Recorder, tmp_path: Path
) -> tuple[asyncio.Task[ProcessHandle], ProcessHandle]:
    """A child that never becomes ready, with the task still waiting for it (once the child said it is loading)."""
    starting = asyncio.get_running_loop().create_task(
        supervisor.start(ChildSpec("slow", targets.never_ready_main, tmp_path))
    )
    handle, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert isinstance(message, JobProgress) and supervisor.children == {handle}
    assert isinstance(handle, ProcessHandle)
    return starting, handle


async def test_a_cancelled_start_kills_the_child_it_was_starting(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    starting, handle = await _starting_child(supervisor, recorder, tmp_path)
    starting.cancel()  # a stop while the worker starts
    with pytest.raises(asyncio.CancelledError):
        await starting
    await asyncio.wait_for(handle.exited.wait(), TIMEOUT)
    assert not supervisor.children and recorder.lost.empty()


async def test_stopping_a_child_still_starting_does_not_wait_for_the_stop_timeout(
    supervised: tuple[Supervisor, Recorder], tmp_path: Path
) -> None:
    supervisor, recorder = supervised
    starting, handle = await _starting_child(supervisor, recorder, tmp_path)
    begun = asyncio.get_running_loop().time()
    await supervisor.stop(handle, timeout=TIMEOUT)  # it would never read a Shutdown
    assert asyncio.get_running_loop().time() - begun < 5
    assert handle.exited.is_set() and not handle.process.is_alive()
    with pytest.raises(ChildStartError):
        await starting
