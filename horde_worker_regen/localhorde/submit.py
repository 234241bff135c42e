"""`POST /v2/generate/submit`: one result for one job id, with the server's exact outcomes (§3.7).

In order: unknown id → 404 `InvalidJobID`; unknown key → 500 (a server bug, reproduced); another
user's key → 403 `WrongCredentials`; then the compare-and-set: already completed → 400 `DuplicateGen`
(200 `{"reward": 0}` while the worker is in maintenance); faulted or aborted → 400 `AbortedGen`
(200 `{"reward": 0}` for a `faulted` submit). More than 50 `gen_metadata` entries → 400
`BadRequest`, but only after the result was stored and rewarded.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import ProcessingGeneration, SubmitAttempt, key_fingerprint
from horde_worker_regen.localhorde.errors import WRONG_CREDENTIALS_MESSAGE, HordeError, internal_error_response
from horde_worker_regen.localhorde.jobs import Submission, set_generation
from horde_worker_regen.localhorde.schemas import SUBMIT_SCHEMA, SubmitArgs
from horde_worker_regen.localhorde.state import StoredObject
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.localhorde.validation import read_json_object, require_argument, validate_schema

MAX_GEN_METADATA = 50
R2_MARKER = "R2"


def _aborted_message(job_id: str) -> str:
    return (
        f"Processing Generation with ID {job_id} took too long to process and has been aborted! "
        "Please check your worker speed and do not onboard worker which generate slower than 1 it/s!"
    )


async def parse_submit(request: web.Request) -> tuple[SubmitArgs, str]:
    """Schema validation, then reqparse's required arguments (apikey, id, generation)."""
    body = await read_json_object(request)
    validate_schema(body, SUBMIT_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", "The worker's owner API key.")
    require_argument(body.get("id") is not None, "id", "json", "The processing generation uuid.")
    require_argument(body.get("generation") is not None, "generation", "json", "The generated output.")
    return SubmitArgs.from_body(body), request.headers["apikey"]


def store_inline_generation(horde: LocalHorde, pg: ProcessingGeneration, generation: str) -> None:
    """A base64 result is decoded and uploaded by the server itself, as `_set_generation_inner` does."""
    logger.warning(f"local horde: job {pg.id} was submitted as base64 instead of via its upload URL")
    try:
        data = base64.b64decode(generation, validate=True)
    except (binascii.Error, ValueError):
        logger.error(f"local horde: job {pg.id}: could not decode the base64 generation")
        return
    horde.state.objects.put(GENERATIONS_BUCKET, f"{pg.id}.webp", StoredObject(data, "image/webp", horde.clock.now()))
    pg.generation = R2_MARKER


async def submit_handler(request: web.Request) -> web.Response:
    """`POST /v2/generate/submit`."""
    horde = horde_of(request)
    args, api_key = await parse_submit(request)
    pg = horde.state.generations.get(args.id)
    if pg is None:
        raise HordeError(404, "InvalidJobID", f"Processing Job with ID {args.id} does not exist.")
    user = horde.state.user_by_key(api_key)
    worker = horde.state.workers[pg.worker_id]
    authorised = user is not None and user.id == worker.owner_id
    applied = authorised and not (pg.is_completed or pg.faulted)
    horde.state.record_submit(args.id, SubmitAttempt(args.state, applied))
    if user is None:
        # Known server bug: the error path reads a `name` argument the submit parser does not have.
        logger.error(f"local horde: submit with unknown key {key_fingerprint(api_key)} → 500 (server bug)")
        return internal_error_response()
    if user.id != worker.owner_id:
        raise HordeError(403, "WrongCredentials", WRONG_CREDENTIALS_MESSAGE)
    submission = Submission(args.generation, args.seed, args.state, args.gen_metadata)
    reward = set_generation(horde.state, horde.reference, pg, submission)
    if reward > 0 and args.generation != R2_MARKER:
        store_inline_generation(horde, pg, args.generation)
    if reward == 0 and not worker.maintenance:
        raise HordeError(400, "DuplicateGen", f"Processing Generation with ID {args.id} already submitted.")
    if reward == -1:
        if args.state != "faulted":
            raise HordeError(400, "AbortedGen", _aborted_message(args.id))
        reward = 0
    if len(args.gen_metadata) > MAX_GEN_METADATA:
        raise HordeError(400, "BadRequest", f"You cannot submit more than {MAX_GEN_METADATA} gen_metadata entries.")
    return web.json_response({"reward": reward})
