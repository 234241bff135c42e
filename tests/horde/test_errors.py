"""Error classification: every rc of horde-api.md gets a deliberate reaction and its own hint."""

from __future__ import annotations

import itertools
import re

import pytest

from horde_worker_regen.horde.errors import RC_ACTIONS, ErrorAction, HordeRequestError, classify
from horde_worker_regen.horde.rc_hints import RC_HINTS

# Every rc horde-api.md names (§1 endpoint table, §3.6 and §5), with the status it comes with and the
# reaction the worker must have. Kept as a literal list so that a new rc in the contract is a
# deliberate decision here, not a default.
DOCUMENTED_RCS: list[tuple[int, str, ErrorAction]] = [
    # POST /v2/generate/pop
    (400, "InvalidPriorityUsername", ErrorAction.FATAL),
    (400, "BadRequest", ErrorAction.FATAL),
    (400, "ProfaneWorkerName", ErrorAction.FATAL),
    (400, "ProfaneBridgeAgent", ErrorAction.FATAL),
    (400, "PolymorphicNameConflict", ErrorAction.FATAL),
    (400, "NulByteInPayload", ErrorAction.FATAL),
    (401, "InvalidAPIKey", ErrorAction.FATAL),
    (403, "AnonForbiddenWorker", ErrorAction.FATAL),
    (403, "WrongCredentials", ErrorAction.FATAL),
    (403, "WorkerMaintenance", ErrorAction.MAINTENANCE),
    (403, "WorkerFlaggedMaintenance", ErrorAction.FATAL),
    (403, "DeletedUser", ErrorAction.FATAL),
    (403, "TooManyWorkers", ErrorAction.FATAL),
    (403, "TooManyWorkersTrusted", ErrorAction.FATAL),
    (403, "TooManySameIPs", ErrorAction.BACK_OFF),
    (403, "WorkerInviteOnly", ErrorAction.FATAL),
    (403, "UnsafeIP", ErrorAction.BACK_OFF),
    (403, "TimeoutIP", ErrorAction.BACK_OFF),
    (403, "TooManyNewIPs", ErrorAction.BACK_OFF),
    # POST /v2/generate/submit
    (400, "DuplicateGen", ErrorAction.DUPLICATE),
    (400, "AbortedGen", ErrorAction.DROP),
    (404, "InvalidJobID", ErrorAction.DROP),
    # GET /v2/find_user, GET /v2/workers/...
    (404, "UserNotFound", ErrorAction.FATAL),
    (404, "WorkerNotFound", ErrorAction.DROP),
    # PUT /v2/workers/{id}
    (400, "NoWorkerModSelected", ErrorAction.FATAL),
    (400, "WorkerNameAlreadyExists", ErrorAction.FATAL),
    (400, "TooLongWorkerName", ErrorAction.FATAL),
    (400, "ProfaneWorkerInfo", ErrorAction.FATAL),
    (403, "NotOwner", ErrorAction.FATAL),
    (403, "NotModerator", ErrorAction.FATAL),
    # horde-wide maintenance (§3.6)
    (400, "MaintenanceMode", ErrorAction.BACK_OFF),
]


# What each rc's hint must say, in words no other rc's hint needs: the horde's actual decision, so that
# the operator fixes the right thing (a profane name is not a taken one).
SPECIFIC_WORDS: dict[str, tuple[str, ...]] = {
    "InvalidPriorityUsername": ("priority_usernames", "alias#id"),
    "BadRequest": ("malformed", "gen_metadata"),
    "ProfaneWorkerName": ("profane", "dreamer_name"),
    "ProfaneBridgeAgent": ("profane", "bridge agent"),
    "PolymorphicNameConflict": ("text or alchemy worker",),
    "NulByteInPayload": ("NUL byte",),
    "InvalidAPIKey": ("rejects this api_key",),
    "AnonForbiddenWorker": ("anonymous key", "own api_key"),
    "WrongCredentials": ("Another user", "unique dreamer_name"),
    "WorkerMaintenance": ("in maintenance", "remove_maintenance_on_init"),
    "WorkerFlaggedMaintenance": ("flagged your account", "moderators"),
    "DeletedUser": ("deleted",),
    "TooManyWorkers": ("untrusted account",),
    "TooManyWorkersTrusted": ("trusted account",),
    "TooManySameIPs": ("Too many workers", "IP address"),
    "WorkerInviteOnly": ("invitation",),
    "UnsafeIP": ("VPN",),
    "TimeoutIP": ("timeout",),
    "TooManyNewIPs": ("IP checker",),
    "DuplicateGen": ("already been submitted",),
    "AbortedGen": ("aborted", "not faulted"),
    "InvalidJobID": ("no longer knows this job",),
    "UserNotFound": ("No horde account",),
    "WorkerNotFound": ("no worker with this name",),
    "NoWorkerModSelected": ("no field",),
    "WorkerNameAlreadyExists": ("Another worker already has the name",),
    "TooLongWorkerName": ("longer than the horde accepts",),
    "ProfaneWorkerInfo": ("profane", "info text"),
    "NotOwner": ("does not own",),
    "NotModerator": ("moderator",),
    "MaintenanceMode": ("whole horde",),
}


def test_the_documented_list_and_the_classification_table_are_the_same_set() -> None:
    assert {rc for _, rc, _ in DOCUMENTED_RCS} == set(RC_ACTIONS) == set(RC_HINTS) == set(SPECIFIC_WORDS)


def _hint(status: int, rc: str) -> str:
    return classify(HordeRequestError(status, rc, "the server's message")).operator_message


@pytest.mark.parametrize(("status", "rc", "action"), DOCUMENTED_RCS, ids=[rc for _, rc, _ in DOCUMENTED_RCS])
def test_every_documented_rc_has_its_own_specific_hint(status: int, rc: str, action: ErrorAction) -> None:
    hint = _hint(status, rc)
    assert hint.startswith(RC_HINTS[rc])
    for words in SPECIFIC_WORDS[rc]:
        assert words in hint, f"{rc}: {hint!r} does not say {words!r}"


def _sentences(text: str) -> set[str]:
    return {part.strip().lower() for part in re.split(r"[.;:()]", text) if len(part.strip()) > 12}


def test_no_two_rcs_share_a_hint_or_a_sentence_of_one() -> None:
    hints = {rc: RC_HINTS[rc] for _, rc, _ in DOCUMENTED_RCS}
    assert len(set(hints.values())) == len(hints)
    for (rc, hint), (other, other_hint) in itertools.combinations(hints.items(), 2):
        shared = _sentences(hint) & _sentences(other_hint)
        assert not shared, f"{rc} and {other} share {shared}"


def test_a_profane_name_is_not_reported_as_a_taken_one() -> None:
    profane = _hint(400, "ProfaneWorkerName")
    assert "profane" in profane and "already" not in profane
    taken = _hint(400, "WorkerNameAlreadyExists")
    assert "already" in taken and "profane" not in taken


@pytest.mark.parametrize(("status", "rc", "action"), DOCUMENTED_RCS, ids=[rc for _, rc, _ in DOCUMENTED_RCS])
def test_every_documented_rc_gets_its_reaction(status: int, rc: str, action: ErrorAction) -> None:
    verdict = classify(HordeRequestError(status, rc, "the server's message"))
    assert verdict.action is action is RC_ACTIONS[rc]
    if action is ErrorAction.FATAL:
        assert len(verdict.operator_message) > 20, "a fatal error must tell the operator what to do"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (None, ErrorAction.RETRY),
        (408, ErrorAction.RETRY),
        (500, ErrorAction.RETRY),
        (503, ErrorAction.RETRY),
        (429, ErrorAction.BACK_OFF),
        (400, ErrorAction.FATAL),
    ],
)
def test_answers_without_an_rc(status: int | None, action: ErrorAction) -> None:
    assert classify(HordeRequestError(status, None, "message")).action is action


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
@pytest.mark.parametrize("rc", ["SomethingNew", "", "InvalidApiKey", "wrongcredentials", "x" * 300])
def test_an_rc_the_contract_does_not_name_is_backed_off_from_never_fatal(status: int, rc: str) -> None:
    verdict = classify(HordeRequestError(status, rc, "a new gate"))
    assert verdict.action is ErrorAction.BACK_OFF and verdict.delay > 0
    assert rc in verdict.operator_message


def test_retry_after_maintenance_and_operator_messages() -> None:
    assert classify(HordeRequestError(429, None, "60 per 1 second", retry_after=7)).delay == 7
    wrong = classify(HordeRequestError(403, "WrongCredentials", "Wrong credentials to submit as this worker."))
    assert "unique dreamer_name" in wrong.operator_message
    anon = classify(HordeRequestError(403, "AnonForbiddenWorker", "Anonymous user is forbidden"))
    assert "own api_key" in anon.operator_message
    models = classify(HordeRequestError(400, "BadRequest", "we cannot accept workers serving unrecognised models"))
    assert models.action is ErrorAction.FATAL and "models_to_load" in models.operator_message
    maintenance = classify(HordeRequestError(403, "WorkerMaintenance", "put into maintenance by its owner"))
    assert "put into maintenance by its owner" in maintenance.operator_message  # the horde's own message too
    server = classify(HordeRequestError(500, None, "Internal Server Error"))
    assert server.action is ErrorAction.RETRY and "deadline" in server.operator_message
