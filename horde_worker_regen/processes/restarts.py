"""Starting a child again after a loss: a few attempts with backoff, then a clear give-up.

Every kind of child is restarted the same way (the inference slots, the safety child): each failed
attempt is reported to the caller (which logs it in its own words) and followed by a growing wait
(`scheduling.policy.retry_delay`); after the last one the caller gets `GaveUp` with every error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.scheduling.policy import retry_delay

RESTART_ATTEMPTS = 3
RESTART_BACKOFF_BASE_S = 1.0

FailedAttempt = Callable[[int, ChildStartError], None]


@dataclass(frozen=True)
class GaveUp:
    """Every attempt failed: how many there were and their errors, oldest first."""

    attempts: int
    errors: tuple[str, ...]

    @property
    def last(self) -> str:
        """The last attempt's error."""
        return self.errors[-1]


async def start_with_retries(
    client: ChildClient,
    spec: ChildSpec,
    on_failed_attempt: FailedAttempt,
    *,
    attempts: int = RESTART_ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ChildHandle | GaveUp:
    """Start `spec`'s child, up to `attempts` times; its handle, or GaveUp.

    `on_failed_attempt(attempt, error)` is called after each failure (`attempt` counts from 1); the
    wait before the next attempt grows exponentially; none follows the last.
    """
    errors: list[str] = []
    for attempt in range(attempts):
        try:
            return await client.start(spec)
        except ChildStartError as error:
            errors.append(str(error))
            on_failed_attempt(attempt + 1, error)
        if attempt + 1 < attempts:
            await sleep(retry_delay(attempt, base=RESTART_BACKOFF_BASE_S))
    return GaveUp(attempts, tuple(errors))
