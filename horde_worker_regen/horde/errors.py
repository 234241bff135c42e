"""What an error from the horde means for the worker: retry, back off, drop, or stop (horde-api.md §1, §5).

`classify` maps an HTTP status and return code (`rc`) to an `ErrorAction`, a delay where one applies
and, for the fatal ones, the sentence that tells the operator what to change. `RC_ACTIONS` holds a
deliberate reaction for every `rc` the contract lists (pop, submit, find_user, the worker endpoints
and the horde-wide maintenance code); an `rc` the horde adds later is backed off from, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
UNKNOWN_RC_DELAY_S = 60.0

_NAME = "Pick another dreamer_name (unique across the whole horde) in bridgeData.yaml."
_FATAL_MESSAGES = {
    "InvalidAPIKey": "The horde does not recognise this api_key. Copy it again from https://aihorde.net/register.",
    "UserNotFound": "The horde does not recognise this api_key. Copy it again from https://aihorde.net/register.",
    "AnonForbiddenWorker": "The anonymous key cannot run a worker. Put your own api_key in bridgeData.yaml.",
    "WrongCredentials": "Another user already owns a worker with this dreamer_name. Pick a unique dreamer_name.",
    "PolymorphicNameConflict": "A text or alchemy worker already uses this dreamer_name. " + _NAME,
    "ProfaneWorkerName": "The horde refuses this dreamer_name. " + _NAME,
    "WorkerNameAlreadyExists": "Another worker already has this dreamer_name. " + _NAME,
    "TooLongWorkerName": "The dreamer_name is too long for the horde (keep it to 100 characters).",
    "ProfaneWorkerInfo": "The horde refuses this worker's info text.",
    "ProfaneBridgeAgent": "The horde refuses this worker's bridge agent.",
    "InvalidPriorityUsername": "Every priority_usernames entry must look like alias#id (e.g. db0#1).",
    "WorkerFlaggedMaintenance": "Your account has been flagged; the horde keeps this worker in maintenance. "
    "Contact the horde's moderators.",
    "DeletedUser": "The account of this api_key has been deleted.",
    "TooManyWorkers": "Your account already runs as many workers as it may. Stop one, or ask to be trusted.",
    "TooManyWorkersTrusted": "Your account already runs as many workers as a trusted account may.",
    "WorkerInviteOnly": "The horde accepts new workers by invitation only at the moment.",
    "NulByteInPayload": "A setting contains a NUL byte; check dreamer_name, models and blacklist.",
    "NotOwner": "This api_key does not own the worker named by dreamer_name.",
    "NotModerator": "The request needs a moderator's key.",
    "NoWorkerModSelected": "The worker update named no field to change.",
}
_BACK_OFF_RCS = {
    "UnsafeIP": IP_CHECK_DELAY_S,
    "TooManyNewIPs": IP_CHECK_DELAY_S,
    "TimeoutIP": IP_CHECK_DELAY_S,
    "TooManySameIPs": IP_CHECK_DELAY_S,
    "MaintenanceMode": MAINTENANCE_DELAY_S,  # horde-wide maintenance: keep polling slowly (§3.6)
}
_DROP_RCS = {"AbortedGen", "InvalidJobID", "WorkerNotFound"}
_UNKNOWN_MODELS = "The horde knows none of the models offered; check models_to_load against the model reference."
_BAD_REQUEST = (
    "The horde refused the request as a bad request. If this is the first start, the dreamer_name may not "
    "contain 'colab', 'tpu' or 'google'; otherwise too many gen_metadata entries were sent."
)
SERVER_ERROR_HINT = (
    "the horde failed internally (HTTP 500); it also answers 500 to a submit when it does not know the api_key "
    "or has lost this worker (a known server bug), so submits are retried only a bounded number of times"
)

# Every rc of horde-api.md, with its reaction (BadRequest depends on its message, see `_by_return_code`).
RC_ACTIONS: dict[str, ErrorAction] = {
    **{rc: ErrorAction.FATAL for rc in _FATAL_MESSAGES},
    **{rc: ErrorAction.BACK_OFF for rc in _BACK_OFF_RCS},
    **{rc: ErrorAction.DROP for rc in _DROP_RCS},
    "WorkerMaintenance": ErrorAction.MAINTENANCE,
    "DuplicateGen": ErrorAction.DUPLICATE,
    "BadRequest": ErrorAction.FATAL,
}


def _by_return_code(error: HordeRequestError) -> Classified | None:
    rc = error.rc
    if rc is None:
        return None
    fixed = {
        "DuplicateGen": Classified(ErrorAction.DUPLICATE),
        "WorkerMaintenance": Classified(ErrorAction.MAINTENANCE, MAINTENANCE_DELAY_S, error.message),
        "BadRequest": Classified(ErrorAction.FATAL, operator_message=(
            _UNKNOWN_MODELS if "unrecognised models" in error.message else f"{_BAD_REQUEST} ({error.message})")),
    }
    if rc in fixed:
        return fixed[rc]
    if rc in _DROP_RCS:
        return Classified(ErrorAction.DROP, operator_message=f"{rc}: {error.message}")
    if rc in _BACK_OFF_RCS:
        return Classified(ErrorAction.BACK_OFF, _BACK_OFF_RCS[rc], f"{rc}: {error.message}")
    if rc in _FATAL_MESSAGES:
        return Classified(ErrorAction.FATAL, operator_message=_FATAL_MESSAGES[rc])
    return Classified(ErrorAction.BACK_OFF, UNKNOWN_RC_DELAY_S,
                      f"the horde answered with a return code this worker does not know ({rc}: {error.message})")


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
        return Classified(ErrorAction.BACK_OFF, delay, "rate limited")
    by_rc = _by_return_code(error)
    if by_rc is not None:
        return by_rc
    # A 4xx without rc is a schema failure: a setting is out of the horde's range.
    return Classified(ErrorAction.FATAL, operator_message=f"The horde refused the request: {error}")
