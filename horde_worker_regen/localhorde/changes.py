"""`StateChanges`: how the local horde tells whoever waits on it that its state may have changed.

The server announces a change after each request it handled (`notify_changes`, its outermost
middleware, in `app.py`) and after each sweep. A test waits for a condition on the state with
`wait_for`, which checks the condition at once and again after each announcement: it returns as
soon as the condition holds, with no polling. A listener (`subscribe`) hears every announcement,
e.g. to merge them with other events a test waits on.

Changes a caller makes itself through the Python API (queueing a request, switching a fault) are
not announced: that caller checks its condition after making them, and `wait_for` does so first.
Everything runs on the event loop, so a condition checked between two announcements sees a state
no request is halfway through changing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from loguru import logger

Listener = Callable[[], None]
Unsubscribe = Callable[[], None]


class StateChanges:
    """Announcements that the state may have changed, to listeners and to `wait_for`."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    @property
    def listening(self) -> int:
        """How many listeners there are now (waiters included)."""
        return len(self._listeners)

    def subscribe(self, listener: Listener) -> Unsubscribe:
        """Call `listener` after every change from now on; returns the function that stops that."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):  # already stopped
                self._listeners.remove(listener)

        return unsubscribe

    def notify(self) -> None:
        """Announce that the state may have changed (a listener that fails is logged, not raised: the
        request that changed the state is answered all the same)."""
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                logger.exception("local horde: a state-change listener failed")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        """Return as soon as `predicate()` holds, checked now and after each change; TimeoutError if it
        still does not after `timeout` seconds (None: wait as long as it takes)."""
        changed = asyncio.Event()
        unsubscribe = self.subscribe(changed.set)
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await changed.wait()
                    changed.clear()
        finally:
            unsubscribe()
