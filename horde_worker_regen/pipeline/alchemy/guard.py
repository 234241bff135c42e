"""The alchemist's side of the fault breaker: every faulted form counted, withdrawals said once.

The alchemist is a worker of its own on the horde, with its own count of aborted forms (more than
20 an hour put it into maintenance), so it keeps a breaker of its own (`scheduling.breaker`). Each
faulted form counts against its form name (a child's failure as a strike, a lost child as a crash,
anything else toward the rolling cap) and against alchemy as a whole; `scheduling.alchemy.form_gate`
then leaves out what is withdrawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from loguru import logger

from horde_worker_regen.scheduling.alchemy import ALL_FORMS, form_causes, form_gate, form_subject
from horde_worker_regen.scheduling.breaker import BreakerSettings, CauseKind, FaultBreaker, Subject, Withdrawal


def _lasting(withdrawal: Withdrawal) -> str:
    if withdrawal.until is None:
        return "until the worker restarts"
    return f"for {(withdrawal.until - withdrawal.since) / 60:.0f} minutes (fault_breaker_cooldown)"


def withdrawal_line(withdrawal: Withdrawal) -> str:
    """The ERROR line of a withdrawal: what failed, what is no longer asked for, for how long."""
    if withdrawal.cause.subject == ALL_FORMS:
        return (
            f"Alchemy paused: {withdrawal.faults} forms faulted within the hour (last: {withdrawal.reason}). No "
            f"form is popped {_lasting(withdrawal)}, to keep the alchemist out of the horde's maintenance."
        )
    name = withdrawal.cause.subject.name
    how = "within the hour" if withdrawal.by_cap else "in a row"
    return (
        f"Alchemy form '{name}' withdrawn: {withdrawal.faults} of its forms faulted {how} "
        f"(last: {withdrawal.reason}). It is no longer asked for {_lasting(withdrawal)}; "
        "look at the faults above, remove it from forms or fix its cause, then restart."
    )


class AlchemyGuard:
    """Counts faulted forms into the alchemist's breaker and leaves withdrawn forms out of the pops."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float]) -> None:
        self.breaker = FaultBreaker(settings)
        self._clock = clock

    def count(self, form: str, kind: CauseKind | None, reason: str) -> None:
        """Count one faulted form: against its name as `kind` (None: not the form's doing) and against alchemy."""
        form_cause, all_cause = form_causes(form, kind or "transient")
        now = self._clock()
        causes = (form_cause, all_cause) if kind is not None else (all_cause,)
        for cause in causes:
            withdrawal = self.breaker.record(cause, reason, now)
            if withdrawal is not None:
                logger.error(withdrawal_line(withdrawal))

    def succeeded(self, form: str) -> None:
        """A form was done: its strikes start again."""
        self.breaker.succeeded([form_subject(form)])

    def gate(self, forms: Sequence[str], held: Mapping[str, int]) -> tuple[str, ...]:
        """The forms the next pop may name."""
        now = self._clock()
        for ended in self.breaker.reinstate(now):
            logger.info(f"Alchemy {ended.cause.subject.name}: its cool-down has passed; it is asked for again")
        return form_gate(self.breaker, forms, held, now)

    def withdrawn(self) -> dict[Subject, Withdrawal]:
        """What is withdrawn now (a cool-down that has passed counts as ended, even before the next pop)."""
        now = self._clock()
        return {subject: w for subject, w in self.breaker.withdrawn.items() if w.until is None or w.until > now}

    def reopens_in(self) -> float | None:
        """Seconds until the breaker may offer more by itself (None: only when a form ends)."""
        return self.breaker.next_change(self._clock())
