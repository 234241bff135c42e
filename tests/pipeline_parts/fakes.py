"""Fakes behind the pipeline's own interfaces: a child client whose children are only handles, a submitter.

`FakeChildren` keeps the `ChildClient` contract (start hands back a ready child, send returns False
once the child is gone, kill gives no loss callback) and records what the pipeline does with it;
the test plays the children's part by calling the bound callbacks with their messages.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord
from horde_worker_regen.processes.client import LostCallback, MessageCallback
from horde_worker_regen.processes.messages import ChildReady, ParentMessage
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec, ChildStartError


@dataclass(frozen=True)
class NoProcess:
    """What a fake child has in place of a process."""

    pid: int | None = None


@dataclass
class FakeChildren:
    """The child client contract, with no process behind any child."""

    events: EventLog = field(default_factory=EventLog)
    sent: list[tuple[ChildHandle, ParentMessage]] = field(default_factory=list)
    started: list[ChildHandle] = field(default_factory=list)
    killed: list[ChildHandle] = field(default_factory=list)
    stopped: list[ChildHandle] = field(default_factory=list)
    failing_starts: int = 0  # the next this many starts fail
    hold_starts: asyncio.Event | None = None  # when set, starts wait for it
    _waiting: list[asyncio.Future[ChildHandle]] = field(default_factory=list)
    _incarnations: Any = field(default_factory=lambda: itertools.count(1))

    def bind(self, on_message: MessageCallback, on_lost: LostCallback) -> None:
        self.on_message, self.on_lost = on_message, on_lost

    async def start(self, spec: ChildSpec) -> ChildHandle:
        if self.hold_starts is not None:
            await self.hold_starts.wait()
        incarnation = next(self._incarnations)
        if self.failing_starts:
            self.failing_starts -= 1
            raise ChildStartError(f"{spec.name}#{incarnation}: it exited with code 1")
        ready: asyncio.Future[ChildReady] = asyncio.get_running_loop().create_future()
        ready.set_result(ChildReady(incarnation, 1000 + incarnation, "fake"))
        handle = ChildHandle(spec, incarnation, NoProcess(), None, ready, 0.0)  # type: ignore[arg-type]
        self.started.append(handle)
        for waiter in self._waiting:  # told on the next turn of the loop: once the caller has taken it
            asyncio.get_running_loop().call_soon(waiter.set_result, handle)
        self._waiting.clear()
        return handle

    def next_start(self) -> asyncio.Future[ChildHandle]:
        """The next child started, once whoever started it has taken it into service."""
        waiter: asyncio.Future[ChildHandle] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return waiter

    def send(self, handle: ChildHandle, message: ParentMessage) -> bool:
        if handle in self.killed or handle in self.stopped:
            return False
        self.sent.append((handle, message))
        return True

    def of_type(self, kind: type[Any]) -> list[tuple[ChildHandle, Any]]:
        """The messages of one type sent so far, with the child each went to."""
        return [(handle, message) for handle, message in self.sent if isinstance(message, kind)]

    def kill(self, handle: ChildHandle) -> None:
        self.killed.append(handle)

    async def stop(self, handle: ChildHandle) -> None:
        self.stopped.append(handle)

    async def stop_all(self) -> None:
        pass

    async def kill_all(self) -> None:
        pass

    def start_heartbeat(self) -> None:
        pass


class FakeSubmitter:
    """Accepts every report at once; remembers which ids were reported how."""

    def __init__(self) -> None:
        self.images: list[str] = []
        self.faults: list[str] = []

    async def report_image(self, record: JobRecord, report: Any) -> IdResult:
        self.images.append(record.ids[report.index])
        return IdResult(IdOutcome.SUBMITTED, 1.0)

    async def report_fault(self, record: JobRecord, index: int) -> IdResult:
        self.faults.append(record.ids[index])
        return IdResult(IdOutcome.FAULTED)
