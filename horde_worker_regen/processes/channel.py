"""The parent's end of a child's Pipe, registered with the event loop so that messages wake it.

`loop.add_reader` on the connection's file descriptor means the loop runs `_on_readable` as soon as
the child writes; nothing polls. A closed pipe (the child exited or died) is reported once through
`on_closed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from multiprocessing.connection import Connection

from loguru import logger

from horde_worker_regen.processes.messages import ChildMessage, ParentMessage

MessageHandler = Callable[[ChildMessage], None]
ClosedHandler = Callable[[], None]


class Channel:
    """Typed, loop-driven messaging with one child over a duplex `multiprocessing` Pipe."""

    def __init__(self, connection: Connection, name: str) -> None:
        self._connection = connection
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_message: MessageHandler | None = None
        self._on_closed: ClosedHandler | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the pipe has been found closed or was closed here."""
        return self._closed

    def attach(self, loop: asyncio.AbstractEventLoop, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        """Start delivering the child's messages to `on_message` on `loop`."""
        self._loop, self._on_message, self._on_closed = loop, on_message, on_closed
        loop.add_reader(self._connection.fileno(), self._on_readable)

    def send(self, message: ParentMessage) -> bool:
        """Send one message; False if the pipe is already broken (the child is gone)."""
        if self._closed:
            return False
        try:
            self._connection.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError) as error:
            logger.debug(f"{self._name}: send failed ({error!r})")
            self._report_closed()
            return False
        return True

    def _on_readable(self) -> None:
        # Drain everything already written: one wake-up may cover several messages.
        while not self._closed:
            try:
                if not self._connection.poll():
                    return
                message: ChildMessage = self._connection.recv()
            except (EOFError, OSError):
                self._report_closed()
                return
            if self._on_message is not None:
                self._on_message(message)

    def _report_closed(self) -> None:
        if self._closed:
            return
        self.close()
        if self._on_closed is not None:
            self._on_closed()

    def close(self) -> None:
        """Stop reading and close the parent's end (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._connection.fileno())
        self._connection.close()
