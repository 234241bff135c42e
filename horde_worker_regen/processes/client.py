"""What the pipeline needs of its children, whoever runs them: the child client interface.

`Supervisor` runs each child in its own process; `InProcessChildren` (`processes/in_process.py`) runs
the same cores in this process for tests. The pipeline is written against this protocol only, and the
worker builds its child client through a `ChildClientFactory` (both classes are one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.messages import ChildMessage, ParentMessage

MessageCallback = Callable[[ChildHandle, ChildMessage], None]
LostCallback = Callable[[ChildHandle, str], None]


class ChildClient(Protocol):
    """Starts, talks to, stops and watches children; tells its owner of their messages and losses."""

    events: EventLog

    def bind(self, on_message: MessageCallback, on_lost: LostCallback) -> None:
        """Where children's messages go, and who is told when a child is lost."""

    async def start(self, spec: ChildSpec) -> ChildHandle:
        """Start a child and wait until it is ready; ChildStartError if it does not come up."""

    def send(self, handle: ChildHandle, message: ParentMessage) -> bool:
        """Send a message to a child; False if it is gone."""

    def kill(self, handle: ChildHandle) -> None:
        """End a child now; no `on_lost` for it."""

    async def stop(self, handle: ChildHandle) -> None:
        """Ask a child to finish and exit; kill it if it does not."""

    async def stop_all(self) -> None:
        """Stop every child."""

    async def kill_all(self) -> None:
        """End every child now and wait until they are gone."""

    def start_heartbeat(self) -> None:
        """Watch every child's liveness from now on."""


class ChildClientFactory(Protocol):
    """Makes the child client of a worker run: `Supervisor`, or `InProcessChildren` in tests."""

    def __call__(self, *, liveness_timeout: float, events: EventLog) -> ChildClient:
        """A child client that loses a child silent for `liveness_timeout` s and records to `events`."""
