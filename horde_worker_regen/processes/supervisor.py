"""Starting, pinging, stopping and replacing child processes; nothing here knows about images.

Children are started with the `spawn` method, each with its incarnation number (`processes/roster.py`
holds the contract every child client keeps). A child process is lost when its pipe closes, its process
exits, or it misses its liveness deadline; a lost or killed process is terminated (SIGTERM, then SIGKILL
if it lingers) and reaped off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from loguru import logger

from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.processes.channel import Channel
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.roster import ChildRoster

KILL_GRACE_S = 3.0
EXIT_STATUS_WAIT_S = 1.0


@dataclass(eq=False)
class ProcessHandle(ChildHandle):
    """One incarnation of a child that runs in a process of its own, behind a pipe."""

    process: BaseProcess
    channel: Channel


class Supervisor(ChildRoster[ProcessHandle]):
    """Owns the child processes of the worker."""

    def __init__(
        self,
        *,
        liveness_timeout: float,
        ping_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        events: EventLog | None = None,
    ) -> None:
        super().__init__(liveness_timeout=liveness_timeout, ping_interval=ping_interval, clock=clock, events=events)
        self._context = multiprocessing.get_context("spawn")
        self._reaping: set[asyncio.Task[None]] = set()

    def _launch(self, spec: ChildSpec, incarnation: int) -> ProcessHandle:
        loop = asyncio.get_running_loop()
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=spec.target, args=(child_end, incarnation, spec.config), name=spec.name, daemon=True
        )
        # SIGINT is not ignored around the spawn for the child to inherit: the parent would lose a Ctrl+C
        # (or a `kill -INT`) that came meanwhile. The child ignores it from its first line of work on.
        process.start()
        child_end.close()
        handle = ProcessHandle(
            spec, incarnation, process, Channel(parent_end, spec.name), loop.create_future(), self._clock()
        )
        handle.channel.attach(loop, lambda message: self._route(handle, message), lambda: self._confirm_exit(handle))
        loop.add_reader(process.sentinel, self._process_exited, handle)
        return handle

    def _own(self, handle: ChildHandle) -> ProcessHandle:
        if not isinstance(handle, ProcessHandle):
            raise TypeError(f"{handle.name} is not a child process of this supervisor")
        return handle

    def _process_exited(self, handle: ProcessHandle) -> None:
        asyncio.get_running_loop().remove_reader(handle.process.sentinel)
        self._confirm_exit(handle)

    def _confirm_exit(self, handle: ProcessHandle) -> None:
        """The pipe closed or the sentinel fired: reap the process (off the loop), then report it once."""
        if handle.confirming:
            return
        handle.confirming = True
        self._in_background(self._reap_and_report(handle))

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Reaping off the loop; `_settled` waits for every such task."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _reap_and_report(self, handle: ProcessHandle) -> None:
        # The sentinel or EOF can come a moment before the exit status can be collected.
        await asyncio.to_thread(handle.process.join, EXIT_STATUS_WAIT_S)
        if handle.process.exitcode is None:
            self._lose(handle, "its pipe closed")  # alive but unreachable: `_lose` terminates it
            await asyncio.to_thread(handle.process.join, KILL_GRACE_S)
            if handle.process.exitcode is None:
                handle.process.kill()
                await asyncio.to_thread(handle.process.join)
        handle.exited.set()
        self._lose(handle, f"it exited with code {handle.process.exitcode}")

    def _end(self, handle: ProcessHandle) -> None:
        """SIGTERM now, SIGKILL if it lingers."""
        if handle.process.exitcode is None:
            handle.process.terminate()
            self._in_background(self._reap(handle))

    async def _reap(self, handle: ProcessHandle) -> None:
        try:
            await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S)
        except asyncio.TimeoutError:
            logger.warning(f"{handle.name} ignored SIGTERM (or is stopped); killing it")
            handle.process.kill()
            # Wait for its exit to be reaped, so that shutdown does not end while that is under way.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S)

    async def _wait_exit(self, handle: ProcessHandle) -> None:
        try:
            await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S * 2)
        except asyncio.TimeoutError:
            handle.process.kill()
            await asyncio.to_thread(handle.process.join, KILL_GRACE_S)

    async def _settled(self) -> None:
        """Wait for every reaping task, including those started while waiting (a kill's exit)."""
        while self._reaping:
            await asyncio.gather(*list(self._reaping))
