"""The double-report check the chaos scenarios share: what the horde received for one id decides it."""

from __future__ import annotations

from horde_worker_regen.localhorde.entities import SubmitAttempt
from tests.chaos.ledger import double_report

OK = SubmitAttempt("ok", applied=True)
REFUSED = SubmitAttempt("ok", applied=False)  # refused (another user's key, a 500) or answered DuplicateGen
FAULTED = SubmitAttempt("faulted", applied=True)


def test_one_report_after_refused_tries_is_not_a_double_report() -> None:
    assert double_report([REFUSED, OK], lost_answers=0) is None
    assert double_report([FAULTED], lost_answers=0) is None


def test_a_second_submit_after_the_horde_applied_one_is_a_double_report() -> None:
    assert double_report([OK, REFUSED], lost_answers=0) == (
        "submitted 1 more time(s) after it was applied, 0 lost answer(s) to excuse it"
    )


def test_each_lost_answer_excuses_one_retry() -> None:
    assert double_report([OK, REFUSED], lost_answers=1) is None
    assert double_report([OK, REFUSED, REFUSED], lost_answers=1) is not None


def test_ok_and_faulted_for_one_id_is_a_double_report_even_after_a_lost_answer() -> None:
    late_fault = SubmitAttempt("faulted", applied=False)
    assert double_report([OK, late_fault], lost_answers=1) == "submitted ok and reported faulted (ok, faulted)"
