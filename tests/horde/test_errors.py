"""Error classification: every rc of horde-api.md §5 gets the right reaction."""

from __future__ import annotations

import pytest

from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify


@pytest.mark.parametrize(
    ("status", "rc", "action"),
    [
        (None, None, ErrorAction.RETRY),
        (500, None, ErrorAction.RETRY),
        (503, None, ErrorAction.RETRY),
        (429, None, ErrorAction.BACK_OFF),
        (400, "DuplicateGen", ErrorAction.DUPLICATE),
        (400, "AbortedGen", ErrorAction.DROP),
        (404, "InvalidJobID", ErrorAction.DROP),
        (403, "WorkerMaintenance", ErrorAction.BACK_OFF),
        (403, "UnsafeIP", ErrorAction.BACK_OFF),
        (401, "InvalidAPIKey", ErrorAction.FATAL),
        (403, "AnonForbiddenWorker", ErrorAction.FATAL),
        (403, "WrongCredentials", ErrorAction.FATAL),
        (400, "InvalidPriorityUsername", ErrorAction.FATAL),
        (400, None, ErrorAction.FATAL),
    ],
)
def test_each_error_gets_its_reaction(status: int | None, rc: str | None, action: ErrorAction) -> None:
    assert classify(HordeRequestError(status, rc, "message")).action is action


def test_retry_after_is_honoured_and_fatal_errors_tell_the_operator_what_to_do() -> None:
    assert classify(HordeRequestError(429, None, "60 per 1 second", retry_after=7)).delay == 7
    wrong = classify(HordeRequestError(403, "WrongCredentials", "Wrong credentials to submit as this worker."))
    assert "unique dreamer_name" in wrong.operator_message
    models = classify(HordeRequestError(400, "BadRequest", "we cannot accept workers serving unrecognised models"))
    assert models.action is ErrorAction.FATAL and "models_to_load" in models.operator_message
