"""What an error from the horde means for the worker: retry, back off, drop, or stop (horde-api.md §5).

`classify` maps an HTTP status and return code (`rc`) to an `ErrorAction`, a delay where one applies
and, for the fatal ones, the sentence that tells the operator what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorAction(Enum):
    """How to react to a failed request."""

    RETRY = "retry"  # transient (5xx, timeout, reset): try again soon, idempotently
    BACK_OFF = "back_off"  # the horde asks us to slow down or wait (429, maintenance, IP checks)
    DUPLICATE = "duplicate"  # the submit had already landed: success
    DROP = "drop"  # the job is gone server-side (aborted, expired): not the worker's fault
    FATAL = "fatal"  # the configuration must change before the worker can serve


class HordeRequestError(RuntimeError):
    """A request the horde answered with an error status, or that never got an answer."""

    def __init__(
        self, status: int | None, rc: str | None, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {rc or ''}: {message}" if status else message)
        self.status = status
        self.rc = rc
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Classified:
    """The reaction to one error."""

    action: ErrorAction
    delay: float = 0.0
    operator_message: str = ""


RETRY_DELAY_S = 2.0
BACK_OFF_DELAY_S = 5.0
MAINTENANCE_DELAY_S = 60.0
IP_CHECK_DELAY_S = 60.0

_FATAL_MESSAGES = {
    "InvalidAPIKey": "The horde does not recognise this api_key. Copy it again from https://aihorde.net/register.",
    "AnonForbiddenWorker": "The anonymous key cannot run a worker. Put your own api_key in bridgeData.yaml.",
    "WrongCredentials": "Another user already owns a worker with this dreamer_name. Pick a unique dreamer_name.",
    "PolymorphicNameConflict": "A text or alchemy worker already uses this dreamer_name. Pick another name.",
    "ProfaneWorkerName": "The horde refuses this dreamer_name. Pick another name.",
    "ProfaneBridgeAgent": "The horde refuses this worker's bridge agent.",
    "InvalidPriorityUsername": "Every priority_usernames entry must look like alias#id (e.g. db0#1).",
    "WorkerFlaggedMaintenance": "Your account has been flagged; the horde keeps this worker in maintenance.",
    "DeletedUser": "The account of this api_key has been deleted.",
    "TooManyWorkers": "Your account already runs as many workers as it may. Stop one, or ask to be trusted.",
    "TooManyWorkersTrusted": "Your account already runs as many workers as a trusted account may.",
    "WorkerInviteOnly": "The horde accepts new workers by invitation only at the moment.",
    "NulByteInPayload": "A setting contains a NUL byte; check dreamer_name, models and blacklist.",
}
_BACK_OFF_RCS = {
    "WorkerMaintenance": MAINTENANCE_DELAY_S,
    "UnsafeIP": IP_CHECK_DELAY_S,
    "TooManyNewIPs": IP_CHECK_DELAY_S,
    "TimeoutIP": IP_CHECK_DELAY_S,
    "TooManySameIPs": IP_CHECK_DELAY_S,
}
_DROP_RCS = {"AbortedGen", "InvalidJobID"}
_UNKNOWN_MODELS = "The horde knows none of the models offered; check models_to_load against the model reference."


def _by_return_code(error: HordeRequestError) -> Classified | None:
    rc = error.rc
    if rc == "DuplicateGen":
        return Classified(ErrorAction.DUPLICATE)
    if rc in _DROP_RCS:
        return Classified(ErrorAction.DROP)
    if rc in _BACK_OFF_RCS:
        return Classified(ErrorAction.BACK_OFF, _BACK_OFF_RCS[rc], f"{rc}: {error.message}")
    if rc in _FATAL_MESSAGES:
        return Classified(ErrorAction.FATAL, operator_message=_FATAL_MESSAGES[rc])
    if rc == "BadRequest" and "unrecognised models" in error.message:
        return Classified(ErrorAction.FATAL, operator_message=_UNKNOWN_MODELS)
    return None


def classify(error: HordeRequestError) -> Classified:
    """The reaction to an error from any worker endpoint."""
    status = error.status
    if status is None or status >= 500 or status == 408:
        return Classified(ErrorAction.RETRY, RETRY_DELAY_S)
    if status == 429:
        delay = error.retry_after if error.retry_after is not None else BACK_OFF_DELAY_S
        return Classified(ErrorAction.BACK_OFF, delay)
    by_rc = _by_return_code(error)
    if by_rc is not None:
        return by_rc
    # A 400 without rc is a schema failure: a setting is out of the horde's range.
    return Classified(ErrorAction.FATAL, operator_message=f"The horde refused the request: {error}")
