"""One daemon thread of its own that runs blocking calls in order, each answered as an asyncio future.

For calls that may never return (a wedged NVIDIA driver holds an NVML call for ever): in the default
executor such a call would hold up the worker's exit, since `asyncio.run` waits for the executor's
threads with no timeout (Python 3.10 and 3.11). This thread is a daemon nobody joins, so the process
exits around it; the loop only ever awaits a future, which its awaiting task can give up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_Call = tuple[Callable[[], Any], asyncio.Future[Any]]


class CallThreadClosed(RuntimeError):
    """A call was submitted after `close`."""


class CallThread:
    """Runs each submitted call on one daemon thread, one after the other, in the order submitted."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        """The call's answer (or its exception) once the thread has run it; must be called on the loop."""
        if self._closed:
            raise CallThreadClosed(f"the {self._thread.name} thread is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._calls.put((call, future))
        return future

    def close(self) -> None:
        """No more calls: the thread ends after those already submitted (never waited for here)."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            try:
                answer = call()
            except BaseException as error:  # handed to the awaiting task, whatever it is
                _settle(future, None, error)
            else:
                _settle(future, answer, None)


def _settle(future: asyncio.Future[Any], answer: Any, error: BaseException | None) -> None:
    """Hand the outcome to the future's loop, unless nobody waits any more (cancelled, or the loop is gone)."""

    def settle() -> None:
        if future.done():  # the awaiting task gave up (cancelled) while the call ran
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(answer)

    # RuntimeError: the loop closed while the call ran; the worker is exiting and nobody needs the answer.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(settle)
