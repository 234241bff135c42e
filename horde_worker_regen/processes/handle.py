"""What a child client hands its owner for each child it starts, whoever runs the child.

A `ChildHandle` is one incarnation of one child: its spec, its incarnation number, the ready handshake,
and the two things that differ between a child process and a child run in this process for tests, each
behind a small protocol: the process part (`pid`, `exitcode`) and the channel (`send`, `close`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from horde_worker_regen.processes.messages import ChildReady, ParentMessage


class ChildStartError(RuntimeError):
    """A child did not come up (it failed, exited, or never said it was ready)."""


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a spawn target `target(connection, incarnation, config)` and its config."""

    name: str
    target: Callable[..., None]
    config: Any


class ChildProcess(Protocol):
    """The process a child runs in, as far as its owner may look at it."""

    @property
    def pid(self) -> int | None:
        """Its process id; None when it has no process of its own (or none yet)."""

    @property
    def exitcode(self) -> int | None:
        """How it ended (negative: the signal that ended it); None while it runs."""


class ChildChannel(Protocol):
    """The parent's end of the line to a child."""

    def send(self, message: ParentMessage) -> bool:
        """Send one message; False if the child is gone."""

    def close(self) -> None:
        """Stop reading from and writing to the child (idempotent)."""


@dataclass(eq=False)
class ChildHandle:
    """One running incarnation of a child."""

    spec: ChildSpec
    incarnation: int
    process: ChildProcess
    channel: ChildChannel
    ready: asyncio.Future[ChildReady]
    last_seen: float
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    lost: bool = False
    confirming: bool = False

    @property
    def name(self) -> str:
        """The child's name with its incarnation, for logs."""
        return f"{self.spec.name}#{self.incarnation}"
