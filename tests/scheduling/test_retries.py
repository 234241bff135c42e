"""The retry, strike and quarantine decisions as pure functions, table by table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.scheduling.breaker import (
    BreakerSettings,
    Cause,
    CauseKind,
    FaultBreaker,
    Subject,
    blocking,
)
from horde_worker_regen.scheduling.retries import (
    LossAction,
    after_loss,
    crash_cause,
    described,
    failure_cause,
    transient_cause,
)

NOW, DEADLINE, JOB_S = 100.0, 200.0, 10.0


@pytest.mark.parametrize(
    ("losses", "job_retries", "now", "action"),
    [
        (1, 1, NOW, LossAction.RETRY),  # the first loss, one retry allowed, plenty of time
        (2, 2, NOW, LossAction.RETRY),
        (2, 1, NOW, LossAction.STRIKE),  # lost again after its only retry
        (1, 0, NOW, LossAction.STRIKE),  # no retries: its only process was lost
        (1, 1, DEADLINE - JOB_S + 0.1, LossAction.FAULT_NO_TIME),  # a retry would end past the deadline
        (1, 1, DEADLINE - JOB_S, LossAction.RETRY),  # exactly in time
        (1, 1, DEADLINE, LossAction.FAULT_NO_TIME),  # at the deadline: no retry either
        (3, 1, DEADLINE, LossAction.STRIKE),  # out of retries wins over out of time
    ],
)
def test_after_a_lost_process(losses: int, job_retries: int, now: float, action: LossAction) -> None:
    assert after_loss(losses, job_retries, now, DEADLINE, JOB_S) is action


@pytest.mark.parametrize(
    ("kind", "subject", "cause"),
    [
        ("missing_model", "Broken", Cause.of("missing_model", "Broken")),
        ("missing_model", "", Cause.of("missing_model", "Deliberate")),  # no model named: the job's
        ("unloadable_model", "Other", Cause.of("unloadable_model", "Other")),
        ("transient", "", Cause.of("transient", "Deliberate")),
        ("failing_feature", "post_processing", Cause.of("failing_feature", "post_processing")),
        ("unsupported_feature", "controlnet", Cause.of("unsupported_feature", "controlnet")),
        ("failing_feature", "teleportation", Cause.of("transient", "Deliberate")),  # unknown: the job's own
        ("unsupported_feature", "", Cause.of("transient", "Deliberate")),
    ],
)
def test_the_cause_a_child_gave_for_a_failed_job(kind: CauseKind, subject: str, cause: Cause) -> None:
    assert failure_cause(kind, subject, "Deliberate") == cause


@pytest.mark.parametrize(
    ("made", "kind", "subject", "feature", "deterministic"),
    [
        (transient_cause("Deliberate"), "transient", "Deliberate", False, False),
        (crash_cause("Deliberate"), "crashing_model", "Deliberate", False, True),
        (failure_cause("failing_feature", "lora", "Deliberate"), "failing_feature", "lora", True, True),
    ],
)
def test_the_causes_the_pipeline_counts(
    made: Cause, kind: str, subject: str, feature: bool, deterministic: bool
) -> None:
    assert (made.kind, made.subject, made.deterministic) == (kind, Subject(subject, feature), deterministic)


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        (None, None),  # none of this worker's doing
        (transient_cause("Deliberate"), "transient: model 'Deliberate'"),
        (failure_cause("failing_feature", "lora", "X"), "failing_feature: feature 'lora'"),
    ],
)
def test_a_cause_as_the_event_log_writes_it(cause: Cause | None, text: str | None) -> None:
    assert described(cause) == text


SPEC = GenerationSpec("j", "Deliberate", "a fox", 512, 512, 20, 1, 7, "k_euler", 7.0, False, None, (), "txt2img")
WITH_LORA = replace(SPEC, payload={"loras": [{"name": "11"}]})
BREAKER = BreakerSettings(cooldown_s=600.0, strikes=2, crash_strikes=3, cap=4)


def _breaker_after(*faults: tuple[Cause, int]) -> FaultBreaker:
    breaker = FaultBreaker(BREAKER)
    for cause, ids in faults:
        breaker.record(cause, "it failed", now=0.0, ids=ids)
    return breaker


@pytest.mark.parametrize(
    ("faults", "spec", "blocked_by"),
    [
        ((), SPEC, None),
        (((Cause.of("missing_model", "Deliberate"), 1),), SPEC, None),  # one strike: not yet
        (((Cause.of("missing_model", "Deliberate"), 1),) * 2, SPEC, Subject("Deliberate")),  # quarantined
        (((crash_cause("Deliberate"), 1),) * 2, SPEC, None),  # crashes need three strikes here
        (((crash_cause("Deliberate"), 1),) * 3, SPEC, Subject("Deliberate")),
        (((Cause.of("failing_feature", "lora"), 1),) * 2, SPEC, None),  # a feature the job does not need
        (((Cause.of("failing_feature", "lora"), 1),) * 2, WITH_LORA, Subject("lora", feature=True)),
        (((transient_cause("Deliberate"), 4),), SPEC, None),  # the rolling cap is no verdict on the job
        (((Cause.of("missing_model", "Other"), 1),) * 2, SPEC, None),  # another model
    ],
)
def test_which_withdrawal_keeps_a_queued_job_from_running(
    faults: tuple[tuple[Cause, int], ...], spec: GenerationSpec, blocked_by: Subject | None
) -> None:
    withdrawal = blocking(_breaker_after(*faults), spec)
    assert (withdrawal.cause.subject if withdrawal is not None else None) == blocked_by


@pytest.mark.parametrize(
    ("cause", "limit"),
    [
        (Cause.of("missing_model", "M"), 2),
        (Cause.of("unsupported_feature", "lora"), 2),
        (crash_cause("M"), 3),  # quarantine_model_after_strikes
    ],
)
def test_the_strikes_that_withdraw_a_subject(cause: Cause, limit: int) -> None:
    assert FaultBreaker(BREAKER).limit_of(cause) == limit
