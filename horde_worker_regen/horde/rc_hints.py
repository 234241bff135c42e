"""What each return code (`rc`) of the horde means for the operator, in one sentence of its own.

Every rc that horde-api.md names (§1, §3.6, §3.7, §3.8, §5) has its own hint here, saying what the
horde decided and what, if anything, the operator can change: a profane name is not a taken name,
and an IP the horde distrusts is not an account with too many workers. `horde.errors` attaches the
hint to its verdict; the horde's own message, where it adds something (the seconds of a `TimeoutIP`,
a maintenance message), is shown next to it.
"""

from __future__ import annotations

REGISTER_URL = "https://aihorde.net/register"

RC_HINTS: dict[str, str] = {
    # The api_key and its account.
    "InvalidAPIKey": f"The horde rejects this api_key (mistyped, or none sent); copy it again from {REGISTER_URL}.",
    "UserNotFound": f"No horde account has this api_key; register at {REGISTER_URL} and use the key it gives.",
    "AnonForbiddenWorker": "The anonymous key (0000000000) cannot run a worker; put your own api_key in "
    "bridgeData.yaml.",
    "DeletedUser": "The horde account of this api_key has been deleted; register a new account and use its key.",
    "WorkerFlaggedMaintenance": "The horde has flagged your account, so it keeps all of its workers in "
    "maintenance for good; only the horde's moderators can lift the flag: contact them.",
    # The worker's name and the worker record.
    "WrongCredentials": "Another user already owns a worker with this dreamer_name (or the job belongs to "
    "another user's worker); pick a unique dreamer_name, or use that worker's owner's api_key.",
    "ProfaneWorkerName": "The horde judged this dreamer_name profane and refuses it; choose a name without "
    "offensive words.",
    "PolymorphicNameConflict": "A text or alchemy worker already uses this dreamer_name, and an image worker "
    "cannot share a name with one; rename this worker.",
    "WorkerNameAlreadyExists": "Another worker already has the name this worker was to be renamed to; choose "
    "a dreamer_name no worker uses yet.",
    "TooLongWorkerName": "The dreamer_name is longer than the horde accepts; shorten it (100 characters at most).",
    "NotOwner": "This api_key does not own the worker named by dreamer_name; use its owner's api_key.",
    "NotModerator": "Only a horde moderator may make that change to a worker (pausing it, for one).",
    "NoWorkerModSelected": "The update of the worker record named no field to change; nothing was changed.",
    "WorkerNotFound": "The horde has no worker with this name or id (a worker is created by its first pop).",
    "ProfaneWorkerInfo": "The horde judged the worker's info text profane; reword the info text.",
    "ProfaneBridgeAgent": "The horde judged the bridge agent (name:version:url) profane; the worker builds "
    "it itself, so report this as a bug of the worker.",
    # The pop request's contents.
    "InvalidPriorityUsername": "Every priority_usernames entry must look like alias#id (e.g. db0#1); fix the "
    "list in bridgeData.yaml.",
    "NulByteInPayload": "A setting sent to the horde contains a NUL byte; remove it from dreamer_name, "
    "models_to_load or the blacklist.",
    "BadRequest": "The horde refused the request as malformed: on a first start the dreamer_name may not "
    "contain 'colab', 'tpu' or 'google'; on a submit, too many gen_metadata entries were sent.",
    # Limits of the horde and of the account.
    "TooManyWorkers": "This account already runs as many workers as an untrusted account may; stop one, "
    "reuse its dreamer_name, or ask the moderators to trust the account.",
    "TooManyWorkersTrusted": "This account already runs as many workers as even a trusted account may; stop "
    "one or reuse an existing dreamer_name.",
    "WorkerInviteOnly": "The horde takes new workers by invitation only for now; reuse the dreamer_name of a "
    "worker you already have, or ask the moderators for an invitation.",
    "MaintenanceMode": "The whole horde is in maintenance: no new requests are queued, so there are no jobs; "
    "the worker keeps polling slowly and still submits what it holds.",
    # The worker's IP address: the horde asks to wait, the worker retries by itself.
    "TooManySameIPs": "Too many workers already run from this IP address; the worker retries later, but stop "
    "some of them if this persists.",
    "UnsafeIP": "The horde distrusts this IP address (a VPN or proxy); the worker retries later, but run it "
    "without the VPN if this persists.",
    "TimeoutIP": "The horde has put this IP address in a timeout; the worker retries when it ends.",
    "TooManyNewIPs": "The horde's IP checker is overloaded; the worker retries later.",
    # A worker in maintenance, and the answers about one job.
    "WorkerMaintenance": "This worker is in maintenance (set by its owner, a moderator, or the horde after "
    "too many dropped jobs); fix the cause, then lift it on the horde's site or with "
    "remove_maintenance_on_init.",
    "DuplicateGen": "This image had already been submitted (the answer to an earlier try was lost); it counts "
    "as delivered.",
    "AbortedGen": "The horde had already aborted this job (past its ttl) and handed it to another worker; the "
    "image is dropped, not faulted.",
    "InvalidJobID": "The horde no longer knows this job (its request expired or was deleted); the image is "
    "dropped, with no kudos.",
}
UNKNOWN_MODELS_HINT = "The horde knows none of the models offered; check models_to_load against the model reference."
