"""SIGINT and SIGTERM for the whole life of `run`: a stop, never a death by signal.

The handlers are installed first thing (`__main__`), before the slow imports, and stay for the life of
the process; only what a signal does changes:

- nothing routed yet (imports, configuration): `StopRequested` is raised where the main thread is, and
  the command ends with exit 0 (nothing was started that needs stopping);
- routed to an event loop (start-up checks, then the running worker): the handler is called on that
  loop, so it only ever runs between two steps of the loop's work;
- ignored (the worker has stopped and is printing its summary): the stop is already under way.

Plain `signal.signal` handlers, because the loop resets a signal to its default action when its
handler is removed, and a SIGTERM then would kill the worker. The running worker uses the loop's own
handlers (`orchestrator.Worker.run`), and hands the signals back here, with `ignore`, as it ends.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Literal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SignalHandler = Callable[[int], None]


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived before anything was running: end the command with exit 0.

    A KeyboardInterrupt, so that code which already treats Ctrl+C as "stop now" treats SIGTERM alike."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Where SIGINT and SIGTERM go: raised, handled on an event loop, or ignored."""

    def __init__(self) -> None:
        self._mode: Literal["raise", "route", "ignore"] = "raise"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: SignalHandler | None = None

    def install(self) -> None:
        """Take over both signals (main thread only, as Python requires; elsewhere this does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) != self._on_signal:
                signal.signal(signum, self._on_signal)

    def route_to(self, loop: asyncio.AbstractEventLoop, handler: SignalHandler) -> None:
        """From now on, call `handler(signum)` on `loop` for each signal."""
        self._mode, self._loop, self._handler = "route", loop, handler
        self.install()

    def ignore(self) -> None:
        """From now on, ignore both signals (the process is already stopping); retakes them from an event
        loop that handled them meanwhile."""
        self._mode, self._loop, self._handler = "ignore", None, None
        self.install()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._mode == "ignore":
            return
        loop = self._loop
        if self._mode == "raise" or loop is None or loop.is_closed():
            raise StopRequested(signum)
        loop.call_soon_threadsafe(self._dispatch, signum)

    def _dispatch(self, signum: int) -> None:
        # The handler is looked up when the loop runs this, not when the signal came: a hand-over
        # (start-up checks to the worker) between the two sends the signal to the new owner.
        if self._handler is not None:
            self._handler(signum)


stop_signals = StopSignals()
