"""The pipeline's side of the fault breaker: it counts the faults, says what was withdrawn, gates the pops.

`scheduling.breaker` decides; this module feeds it the jobs held (from the registry) and the clock,
writes the one ERROR line of each withdrawal (what failed, for how long, what to do), and notes once
when every served model is withdrawn and popping stops, and once when it resumes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from loguru import logger

from horde_worker_regen.jobs.pop_flags import FEATURE_FLAGS
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.scheduling.breaker import (
    Cause,
    FaultBreaker,
    PopGate,
    Subject,
    Withdrawal,
    all_withdrawn,
    blocking,
    pop_gate,
    subjects_of,
)

# A job in these states still holds its ids: they may yet fault.
_HOLDING = (JobState.POPPED, JobState.INPUTS_FETCHED, JobState.QUEUED, JobState.RUNNING)

_ADVICE = {
    "missing_model": "its file is not on disk: run download-models (or check cache_home), or remove it "
    "from models_to_load",
    "unloadable_model": "its file cannot be loaded: delete it so that it is downloaded again, or remove it "
    "from models_to_load",
    "crashing_model": "Check its file (delete it to download it again) or remove it from models_to_load",
    "unsupported_feature": "this worker cannot provide it: install what it needs, or set {flags} to false",
    "failing_feature": "it fails every time: check what it needs in the log, or set {flags} to false",
}


def _lasting(withdrawal: Withdrawal) -> str:
    if withdrawal.until is None:
        return "until the worker restarts"
    return f"for {(withdrawal.until - withdrawal.since) / 60:.0f} minutes (fault_breaker_cooldown)"


def withdrawal_line(withdrawal: Withdrawal) -> str:
    """The ERROR line of a withdrawal: what failed, what is no longer asked for, how long, what to do."""
    cause, subject = withdrawal.cause, withdrawal.cause.subject
    flags = " and ".join(FEATURE_FLAGS.get(subject.name, ())) if subject.feature else ""
    refused = (
        f"Jobs needing {subject.name} are refused ({flags} off)"
        if subject.feature
        else "It is no longer offered to the horde"
    )
    if withdrawal.by_cap:
        return (
            f"{subject.describe(capital=True)} withdrawn: {withdrawal.faults} of its images faulted within "
            f"the hour (last: {withdrawal.reason}). {refused} {_lasting(withdrawal)}, to keep this worker "
            "out of the horde's maintenance. Look at the faults above and fix their cause, then restart."
        )
    if cause.kind == "crashing_model":
        return (
            f"Model '{subject.name}' quarantined: {withdrawal.faults} of its jobs in a row killed every "
            f"inference process they ran on. {refused} {_lasting(withdrawal)}. "
            f"{_ADVICE[cause.kind]}, then restart."
        )
    advice = _ADVICE.get(cause.kind, "fix the cause").format(flags=flags)
    return (
        f"{subject.describe(capital=True)} withdrawn: {withdrawal.faults} of its jobs in a row failed "
        f"({withdrawal.reason}). {refused} {_lasting(withdrawal)}, to keep this worker out of the horde's "
        f"maintenance. To fix: {advice}; then restart the worker."
    )


class FaultGuard:
    """Counts faults into the breaker and gates pops on the jobs the registry holds."""

    def __init__(self, breaker: FaultBreaker, registry: JobRegistry, clock: Callable[[], float]) -> None:
        self.breaker = breaker
        self._registry = registry
        self._clock = clock
        self.popping_stopped = False

    def count(self, record: JobRecord, cause: Cause, reason: str) -> Withdrawal | None:
        """Count a fault of the job through `cause`; a withdrawal it starts is logged (once) and returned."""
        withdrawal = self.breaker.record(cause, reason, self._clock(), len(record.ids))
        if withdrawal is not None:
            logger.error(withdrawal_line(withdrawal))
        elif cause.deterministic and cause.subject not in self.breaker.withdrawn:
            logger.warning(
                f"{cause.subject.describe(capital=True)}: strike {self.breaker.strikes_of(cause)} "
                f"of {self.breaker.limit_of(cause)} toward withdrawal ({cause.kind})"
            )
        return withdrawal

    def succeeded(self, spec: GenerationSpec) -> None:
        """A job succeeded: its model's and features' strikes start again."""
        self.breaker.succeeded(subjects_of(spec))

    def blocking(self, spec: GenerationSpec) -> Withdrawal | None:
        """A deterministic withdrawal the job needs a subject of: it would fail the same way, so it is not run."""
        return blocking(self.breaker, spec)

    def gate(self, models: list[str]) -> PopGate:
        """What the next pop may ask for (notes when every served model is withdrawn, and when no longer)."""
        now = self._reinstate()
        self._note_stopped(all_withdrawn(self.breaker, models))
        return pop_gate(self.breaker, models, self._held_ids(), now)

    def flags_off(self) -> frozenset[str]:
        """The pop flags of the features refused now."""
        return pop_gate(self.breaker, [], self._held_ids(), self._reinstate()).flags_off

    def _reinstate(self) -> float:
        """End the withdrawals whose cool-down has passed, saying so; the time now."""
        now = self._clock()
        for ended in self.breaker.reinstate(now):
            logger.info(
                f"{ended.cause.subject.describe(capital=True)}: its cool-down has passed; it is asked for again"
            )
        return now

    def _held_ids(self) -> Counter[Subject]:
        held: Counter[Subject] = Counter()
        for record in self._registry:
            if record.state in _HOLDING:
                for subject in subjects_of(record.spec):
                    held[subject] += len(record.ids)
        return held

    def _note_stopped(self, stopped: bool) -> None:
        if stopped and not self.popping_stopped:
            logger.error(
                "Every model this worker serves is withdrawn by the fault breaker (see above): popping "
                "has stopped. The worker keeps running and finishes the jobs it holds; it pops again "
                "when a cool-down passes, or restart it once the cause is fixed."
            )
        elif self.popping_stopped and not stopped:
            logger.info("A model is offered again: popping resumes")
        self.popping_stopped = stopped

    def reopens_in(self) -> float | None:
        """Seconds until the breaker's answer may change by itself (None: only a job's end changes it)."""
        return self.breaker.next_change(self._clock())

    def status(self) -> dict[str, Any]:
        """For the status line, the dashboard and /status.json: what is withdrawn, whether popping stopped."""
        now = self._clock()
        return {
            "popping_stopped": self.popping_stopped,
            "withdrawn": [
                {"subject": w.cause.subject.name, "feature": w.cause.subject.feature, "kind": w.cause.kind,
                 "by_cap": w.by_cap, "faults": w.faults, "reason": w.reason,
                 "remaining_s": None if w.until is None else max(0.0, w.until - now)}
                for w in self.breaker.withdrawn.values()
            ],
        }  # fmt: skip
