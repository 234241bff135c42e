"""The safety child as the pipeline sees it: send checks, replace the child if lost, resend what it held.

A check is pending from the moment it is sent until its `SafetyChecked` arrives. When the child is
lost, a replacement is started and every pending check is sent again, tagged with the new
incarnation; a check that was pending through `MAX_SAFETY_ATTEMPTS` losses is given up (its job is
faulted by the caller) so that one poisonous image cannot crash the child forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from loguru import logger

from horde_worker_regen.pipeline.child_seat import ChildSeat
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.messages import CheckImages
from horde_worker_regen.processes.restarts import GaveUp

MAX_SAFETY_ATTEMPTS = 3


class SafetyLink:
    """Owns the safety child and the checks it has not answered yet."""

    def __init__(
        self,
        supervisor: ChildClient,
        spec: ChildSpec,
        on_check_abandoned: Callable[[str, str], None],
        on_give_up: Callable[[str], None],
    ) -> None:
        self._supervisor = supervisor
        self.seat = ChildSeat(supervisor, spec)
        self._on_check_abandoned = on_check_abandoned
        self._on_give_up = on_give_up
        self._pending: dict[str, CheckImages] = {}
        self._attempts: dict[str, int] = {}
        self.restarting = True  # off once shutdown begins: a lost child is not replaced

    @property
    def handle(self) -> ChildHandle | None:
        """The safety child, while one is up."""
        return self.seat.handle

    async def start(self) -> None:
        """Start the safety child; ChildStartError if it does not come up."""
        self.seat.starting()
        try:
            handle = await self._supervisor.start(self.seat.spec)
        except ChildStartError:
            self.seat.failed()
            raise
        self.seat.up(handle)

    def check(self, request: CheckImages) -> None:
        """Send a check now, or as soon as a replacement child is ready."""
        self._pending[request.job_key] = request
        self._attempts[request.job_key] = 1
        self._send(request)

    def _send(self, request: CheckImages) -> None:
        if self.handle is not None:
            self._supervisor.send(self.handle, replace(request, incarnation=self.handle.incarnation))

    @property
    def pending_checks(self) -> int:
        """Image checks sent (or waiting for a replacement child) and not answered yet."""
        return len(self._pending)

    def answered(self, job_key: str) -> bool:
        """Mark a check answered; False if it was not pending (a duplicate or an abandoned check)."""
        self._attempts.pop(job_key, None)
        return self._pending.pop(job_key, None) is not None

    def forget(self, job_key: str) -> None:
        """Stop waiting for a check (its job ended another way)."""
        self._attempts.pop(job_key, None)
        self._pending.pop(job_key, None)

    def owns(self, handle: ChildHandle) -> bool:
        """True if `handle` is the current safety child."""
        return handle is self.handle

    def lost(self, reason: str) -> None:
        """The safety child was lost: abandon checks that failed too often, restart and resend the rest."""
        self.seat.lost()
        for job_key in list(self._pending):
            self._attempts[job_key] += 1
            if self._attempts[job_key] > MAX_SAFETY_ATTEMPTS:
                self.forget(job_key)
                self._on_check_abandoned(job_key, f"the safety check failed {MAX_SAFETY_ATTEMPTS} times ({reason})")
        if self.restarting:
            self.seat.restart(_log_failed_attempt, self._restarted, self._gave_up)
        else:
            self.seat.stopped()

    def _restarted(self, handle: ChildHandle) -> None:
        self.seat.up(handle)
        for request in list(self._pending.values()):
            self._send(request)

    def _gave_up(self, gave_up: GaveUp) -> None:
        self.seat.failed()
        for job_key in list(self._pending):
            self.forget(job_key)
            self._on_check_abandoned(job_key, "the safety process could not be restarted")
        self._on_give_up(f"the safety process could not be restarted after {gave_up.attempts} attempts")

    def stop_restarting(self) -> None:
        """Stop restarting the child (shutdown); a restart under way is cancelled."""
        self.restarting = False
        if self.seat.restarting:
            self.seat.stopped()


def _log_failed_attempt(attempt: int, error: ChildStartError) -> None:
    logger.warning(f"Safety process restart attempt {attempt} failed: {error}")
