"""One child the pipeline keeps running: its spec, its current handle, its lifecycle and its restart.

An inference slot and the safety link each hold one seat. The owner moves the seat through its
lifecycle (`pipeline.lifecycle.ChildState`) as it takes a child into service or lets it go, so that
its own state and the seat's change together; `restart` runs in the background, moves the seat to
STARTING when the new child is being started, and hands the owner the new handle or the give-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from horde_worker_regen.pipeline.lifecycle import CHILD_TRANSITIONS, ChildState, move
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.restarts import FailedAttempt, GaveUp, start_with_retries


class ChildSeat:
    """The child serving one place, with the lifecycle of whichever incarnation holds it."""

    def __init__(self, client: ChildClient, spec: ChildSpec) -> None:
        self.spec = spec
        self._client = client
        self.handle: ChildHandle | None = None
        self.state = ChildState.STOPPED
        self._restart: asyncio.Task[None] | None = None

    def _move(self, new: ChildState) -> None:
        self.state = move(CHILD_TRANSITIONS, self.state, new, f"child {self.spec.name}")

    def starting(self) -> None:
        """A new child is being started for this seat."""
        self._move(ChildState.STARTING)

    def up(self, handle: ChildHandle) -> None:
        """The new child is up and taken into service."""
        self._move(ChildState.READY)
        self.handle = handle

    def failed(self) -> None:
        """No child could be started: given up."""
        self._move(ChildState.FAILED)

    def lost(self) -> None:
        """The child died, went silent, or is being killed."""
        self._move(ChildState.LOST)
        self.handle = None

    def stopping(self) -> ChildHandle:
        """The child is asked to exit (recycled); its handle, to stop it with."""
        handle = self.handle
        assert handle is not None
        self._move(ChildState.STOPPING)
        self.handle = None
        return handle

    def stopped(self) -> None:
        """Shut down: no child from now on (a restart under way is cancelled)."""
        self.cancel_restart()
        if self.state not in (ChildState.STOPPED, ChildState.FAILED):
            self._move(ChildState.STOPPED)
        self.handle = None

    @property
    def restarting(self) -> bool:
        """True while a restart runs in the background."""
        return self._restart is not None and not self._restart.done()

    def restart(
        self,
        on_failed_attempt: FailedAttempt,
        on_up: Callable[[ChildHandle], None],
        on_gave_up: Callable[[GaveUp], None],
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """In the background: run `before` (stopping the old child), then start a new one with retries.

        `on_up(handle)` when it is up (the owner takes it into service with `up`), or `on_gave_up`
        after the last failed attempt (the owner marks the seat `failed`)."""
        self._restart = asyncio.get_running_loop().create_task(
            self._restarted(on_failed_attempt, on_up, on_gave_up, before)
        )

    async def _restarted(
        self,
        on_failed_attempt: FailedAttempt,
        on_up: Callable[[ChildHandle], None],
        on_gave_up: Callable[[GaveUp], None],
        before: Callable[[], Awaitable[None]] | None,
    ) -> None:
        if before is not None:
            await before()
        self.starting()
        result = await start_with_retries(self._client, self.spec, on_failed_attempt)
        if isinstance(result, GaveUp):
            on_gave_up(result)
        else:
            on_up(result)

    def cancel_restart(self) -> bool:
        """Stop a restart under way (shutdown); True if there was one."""
        if not self.restarting:
            return False
        assert self._restart is not None
        self._restart.cancel()
        self._restart = None
        return True
