"""What a job's failure means: retry it, fault it, or strike its model; and which cause the breaker counts.

Pure: the pipeline passes what it knows (how often the job's processes were lost, the configured
retries, the clock, the deadline) and acts on the answer; tests call these functions directly.
"""

from __future__ import annotations

from enum import Enum

from horde_worker_regen.jobs.pop_flags import FEATURE_FLAGS
from horde_worker_regen.scheduling.breaker import FEATURE_KINDS, Cause, CauseKind
from horde_worker_regen.scheduling.policy import StartDecision, start_decision


class LossAction(Enum):
    """What to do with a job whose inference process was lost (died, hung or was killed) while running it."""

    RETRY = "retry"  # queue it again for a fresh process
    FAULT_NO_TIME = "fault_no_time"  # a retry could not finish before its deadline: fault it now
    STRIKE = "strike"  # lost with every process it ran on: fault it, a strike against its model


def after_loss(losses: int, job_retries: int, now: float, deadline: float, expected_job_seconds: float) -> LossAction:
    """The action after the job's `losses`-th lost process, with `job_retries` retries allowed."""
    if losses > job_retries:
        return LossAction.STRIKE
    if start_decision(now, deadline, expected_job_seconds) is StartDecision.RUN:
        return LossAction.RETRY
    return LossAction.FAULT_NO_TIME


def transient_cause(model: str) -> Cause:
    """A job's own fault, counted against its model by the rolling cap."""
    return Cause.of("transient", model)


def crash_cause(model: str) -> Cause:
    """A job lost with every process it ran on: a strike toward quarantining its model."""
    return Cause.of("crashing_model", model)


def failure_cause(kind: CauseKind, subject: str, model: str) -> Cause:
    """The cause an inference child gave for a failed job of `model`.

    A feature the worker does not know, or no model named, reads as the job's own fault."""
    if kind in FEATURE_KINDS:
        return Cause.of(kind, subject) if subject in FEATURE_FLAGS else transient_cause(model)
    return Cause.of(kind, subject or model)


def described(cause: Cause | None) -> str | None:
    """A fault's cause for the event log: `kind: subject`, or None when it is none of this worker's doing."""
    return None if cause is None else f"{cause.kind}: {cause.subject.describe()}"
