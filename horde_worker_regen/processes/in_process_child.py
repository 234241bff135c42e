"""One child run on a thread of this process: what a child process and its pipe are to the parent.

`InProcessChild` stands for both (`InProcessChildren` keeps the client contract around it). Its work
thread builds the child's core, says it is ready, then answers work in order; a message arrives on a
later turn of the event loop. A backend's crash (`os._exit` in a process) raises `ChildExit`, which ends
the thread as the process would end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import NamedTuple, NoReturn

from loguru import logger

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.processes.child_runtime import Work, WorkHandler
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildFailed,
    ChildMessage,
    ChildReady,
    ParentMessage,
    Ping,
    Pong,
    Preload,
    RunForm,
    RunJob,
    Shutdown,
)


class Served(NamedTuple):
    """What a ready child tells: its backend's name, the GPU it is pinned to, how it answers work, and
    the level-13 post-processors its backend runs."""

    backend: str
    device: DeviceReport | None
    handle: WorkHandler
    post_processors: tuple[str, ...] = ()


class ChildExit(BaseException):
    """The child's backend ended what it runs in (`os._exit` in a process): ends the work thread.

    A BaseException, so that the cores, which turn a backend's errors into failed jobs, let it through."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the child exited with code {code}")
        self.code = code


def exit_thread(code: int) -> NoReturn:
    """How a backend run here crashes: the work thread ends as the process would."""
    raise ChildExit(code)


class InProcessChild:
    """What a child process and its pipe are to the parent, for one child run on a thread here."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, incarnation: int) -> None:
        self.name = name
        self.incarnation = incarnation
        self.frozen = False  # nothing it says arrives (SIGSTOP): no pong, no answer
        self._go = threading.Event()  # cleared: work is taken but not started (`InProcessChildren.hold`)
        self._go.set()
        self.thread: threading.Thread | None = None
        self._loop = loop
        self._work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._dead = False  # killed, crashed or exited: nothing more is sent or delivered
        self._exitcode: int | None = None
        self._on_message: Callable[[ChildMessage], None] = lambda message: None
        self._on_exit: Callable[[int], None] = lambda code: None

    @property
    def pid(self) -> int | None:
        """None: the child has no process of its own (its memory is this process's)."""
        return None

    @property
    def exitcode(self) -> int | None:
        """How the child ended; None while it runs."""
        return self._exitcode

    def attach(self, on_message: Callable[[ChildMessage], None], on_exit: Callable[[int], None]) -> None:
        """Where its messages go, and who is told when it ends (both called on the event loop)."""
        self._on_message, self._on_exit = on_message, on_exit

    def run(self, build: Callable[[], Served]) -> None:
        """Start the work thread: build the core, say ready, answer work until told to stop."""
        self.thread = threading.Thread(target=self._serve, args=(build,), name=f"{self.name} work", daemon=True)
        self.thread.start()

    def send(self, message: ParentMessage) -> bool:
        """What a child's IO thread does with a message: pong at once, queue work, stop on Shutdown."""
        if self._dead:
            return False
        if isinstance(message, Ping):
            self._loop.call_soon(self._deliver, Pong(self.incarnation, message.sequence))
        elif isinstance(message, Shutdown):
            self._work.put(None)
        elif isinstance(message, RunJob | CheckImages | Preload | RunForm):
            self._work.put(message)
        return True

    def close(self) -> None:
        """The parent lets go: nothing more is sent or delivered; an idle or held thread ends."""
        self._dead = True
        self._work.put(None)
        self._go.set()

    @property
    def held(self) -> bool:
        """True while it takes work but starts none of it."""
        return not self._go.is_set()

    def hold(self, held: bool) -> None:
        """Hold work (take it, start none of it) or let it go on."""
        if held:
            self._go.clear()
        else:
            self._go.set()

    def end(self, code: int) -> None:
        """The child ended (on the event loop): keep its first exit code, deliver nothing more."""
        if self._exitcode is None:
            self._exitcode = code
        self.close()

    def post(self, message: ChildMessage, then: Callable[[], None] | None = None) -> None:
        """Send a message to the parent (from any thread); it arrives on a later turn of the loop, where
        `then` is called once it was handed over (or dropped: the child is gone or frozen)."""
        self._call_on_loop(functools.partial(self._deliver, message, then))

    def _deliver(self, message: ChildMessage, then: Callable[[], None] | None = None) -> None:
        try:
            if not self._dead and not self.frozen:
                self._on_message(message)
        finally:
            if then is not None:
                then()

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        # An abandoned thread may outlive the loop it reported to: what it says then goes nowhere.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback)

    def _serve(self, build: Callable[[], Served]) -> None:
        code = 0
        try:
            self._answer_work(build)
        except ChildExit as crash:
            code = crash.code  # a crash says nothing more
        self._call_on_loop(functools.partial(self._exited, code))

    def _answer_work(self, build: Callable[[], Served]) -> None:
        try:
            served = build()
        except Exception as error:
            logger.error(f"{self.name} could not start: {error}")
            self.post(ChildFailed(self.incarnation, f"{type(error).__name__}: {error}"))
            return
        self.post(ChildReady(self.incarnation, os.getpid(), served.backend, served.device, served.post_processors))
        while (work := self._work.get()) is not None:
            self._go.wait()
            if self._dead:
                return
            self.post(served.handle(work))

    def _exited(self, code: int) -> None:
        self._on_exit(code)
