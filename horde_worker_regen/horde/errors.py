"""What an error from the horde means for the worker: retry, back off, drop, or stop (horde-api.md §1, §5).

`classify` maps an HTTP status and return code (`rc`) to an `ErrorAction`, a delay where one applies
and the sentence that tells the operator what happened (its own one per rc, `horde.rc_hints`).
`RC_ACTIONS` holds a deliberate reaction for every `rc` the contract lists (pop, submit, find_user,
the worker endpoints and the horde-wide maintenance code); an `rc` the horde adds later is backed off
from, never fatal. 429, 408, 5xx and no answer at all are never a refusal: the caller retries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from horde_worker_regen.horde.rc_hints import RC_HINTS, UNKNOWN_MODELS_HINT


class ErrorAction(Enum):
    """How to react to a failed request."""

    RETRY = "retry"  # transient (5xx, timeout, reset): try again soon, idempotently
    BACK_OFF = "back_off"  # the horde asks us to slow down or wait (429, IP checks, horde-wide maintenance)
    MAINTENANCE = "maintenance"  # this worker is in maintenance: pop no more until it is lifted
    DUPLICATE = "duplicate"  # the submit had already landed: success
    DROP = "drop"  # the job (or worker record) is gone server-side: not the worker's fault
    FATAL = "fatal"  # the configuration must change before the worker can serve


class HordeRequestError(RuntimeError):
    """A request the horde answered with an error status, or that never got an answer."""

    def __init__(self, status: int | None, rc: str | None, message: str, retry_after: float | None = None) -> None:
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
UNKNOWN_RC_DELAY_S = 60.0

_BACK_OFF_RCS = {
    "UnsafeIP": IP_CHECK_DELAY_S,
    "TooManyNewIPs": IP_CHECK_DELAY_S,
    "TimeoutIP": IP_CHECK_DELAY_S,
    "TooManySameIPs": IP_CHECK_DELAY_S,
    "MaintenanceMode": MAINTENANCE_DELAY_S,  # horde-wide maintenance: keep polling slowly (§3.6)
}
_DROP_RCS = {"AbortedGen", "InvalidJobID", "WorkerNotFound"}
# The configuration (key, name, settings) or the account must change before the worker can serve.
_FATAL_RCS = {
    "InvalidAPIKey", "UserNotFound", "AnonForbiddenWorker", "DeletedUser", "WorkerFlaggedMaintenance",
    "WrongCredentials", "ProfaneWorkerName", "PolymorphicNameConflict", "WorkerNameAlreadyExists",
    "TooLongWorkerName", "NotOwner", "NotModerator", "NoWorkerModSelected", "ProfaneWorkerInfo",
    "ProfaneBridgeAgent", "InvalidPriorityUsername", "NulByteInPayload", "BadRequest", "TooManyWorkers",
    "TooManyWorkersTrusted", "WorkerInviteOnly",
}  # fmt: skip
SERVER_ERROR_HINT = (
    "the horde failed internally (HTTP 500); retried until the job's deadline (a 500 is also the horde's "
    "answer to a submit with an unknown api_key, which the start-up check of the key rules out)"
)
RATE_LIMITED_HINT = "the horde's rate limit was reached; waiting as long as it asks (Retry-After)"

# Every rc of horde-api.md, with its reaction (BadRequest's hint depends on its message, see `_by_return_code`).
RC_ACTIONS: dict[str, ErrorAction] = {
    **{rc: ErrorAction.FATAL for rc in _FATAL_RCS},
    **{rc: ErrorAction.BACK_OFF for rc in _BACK_OFF_RCS},
    **{rc: ErrorAction.DROP for rc in _DROP_RCS},
    "WorkerMaintenance": ErrorAction.MAINTENANCE,
    "DuplicateGen": ErrorAction.DUPLICATE,
}


def _by_return_code(error: HordeRequestError) -> Classified | None:
    rc = error.rc
    if rc is None:
        return None
    action = RC_ACTIONS.get(rc)
    if action is None:
        return Classified(
            ErrorAction.BACK_OFF,
            UNKNOWN_RC_DELAY_S,
            f"the horde answered with a return code this worker does not know ({rc}: {error.message})",
        )
    hint = RC_HINTS.get(rc, rc)
    if rc == "BadRequest" and "unrecognised models" in error.message:
        hint = UNKNOWN_MODELS_HINT
    said = f"{hint} (the horde says: {error.message})" if error.message else hint
    if action is ErrorAction.FATAL:
        return Classified(action, operator_message=said)
    if action is ErrorAction.MAINTENANCE:
        return Classified(action, MAINTENANCE_DELAY_S, said)
    return Classified(action, _BACK_OFF_RCS.get(rc, 0.0), hint if action is ErrorAction.DUPLICATE else said)


def classify(error: HordeRequestError) -> Classified:
    """The reaction to an error from any worker endpoint."""
    status = error.status
    if status is None or status == 408:
        return Classified(ErrorAction.RETRY, RETRY_DELAY_S, "no answer from the horde")
    if status >= 500:
        hint = SERVER_ERROR_HINT if status == 500 else f"the horde is failing (HTTP {status})"
        return Classified(ErrorAction.RETRY, RETRY_DELAY_S, hint)
    if status == 429:
        delay = error.retry_after if error.retry_after is not None else BACK_OFF_DELAY_S
        return Classified(ErrorAction.BACK_OFF, delay, RATE_LIMITED_HINT)
    by_rc = _by_return_code(error)
    if by_rc is not None:
        return by_rc
    # A 4xx without rc is a schema failure: a setting is out of the horde's range.
    return Classified(ErrorAction.FATAL, operator_message=f"The horde refused the request: {error}")
