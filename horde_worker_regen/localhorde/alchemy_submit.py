"""`POST /v2/interrogate/submit`: one form's `result` object, with the server's outcomes.

In order (`InterrogateSubmit`): reqparse (`id` and `result` required, `result` must convert to a
dict, so a string is a 400); unknown id → 404 `InvalidJobID`; unknown key → 500 (the server's
error path reads an argument its parser lacks; reproduced, as for image submits); another owner's
key → 403 `WrongCredentials`; then the compare-and-set: `ok` on a PROCESSING form → 200
`{"reward": value}`; `faulted` → abort and re-queue, 200 `{"reward": 0}`; a form already done,
aborted, faulted or cancelled → 400 `DuplicateGen` (200 `{"reward": 0}` while the alchemist is in
maintenance). Each `"R2"` value of the result becomes the download URL of the uploaded image.

One check the live horde does not make: a result with an `"R2"` value is refused (400
`R2UploadMissing`, the form stays in progress) unless a WebP was PUT to the form's `r2_upload`, so
a worker that forgets the upload fails here instead of leaving a requester a dead link.
"""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.alchemy_entities import FormState, InterrogationForm
from horde_worker_regen.localhorde.alchemy_jobs import FAULTED, NOT_PROCESSING, R2_MARKER, deliver_form
from horde_worker_regen.localhorde.alchemy_schemas import InterrogateSubmitArgs, parse_submit_body
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import SubmitAttempt, key_fingerprint
from horde_worker_regen.localhorde.errors import WRONG_CREDENTIALS_MESSAGE, HordeError, internal_error_response
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, URL_LIFETIME_S
from horde_worker_regen.localhorde.validation import read_json_object, require_argument

APIKEY_HELP = "The worker's owner API key"
WEBP_MAGIC_OFFSET = 8


async def parse_interrogate_submit(request: web.Request) -> tuple[InterrogateSubmitArgs, str]:
    """reqparse: `apikey` (headers), then the body's `id`, `result` and `state`."""
    body = await read_json_object(request)
    require_argument("apikey" in request.headers, "apikey", "headers", APIKEY_HELP)
    return parse_submit_body(body), request.headers["apikey"]


def is_webp(data: bytes) -> bool:
    """A RIFF container holding WebP."""
    return data[:4] == b"RIFF" and data[WEBP_MAGIC_OFFSET : WEBP_MAGIC_OFFSET + 4] == b"WEBP"


def check_upload(horde: LocalHorde, form: InterrogationForm, args: InterrogateSubmitArgs) -> None:
    """A result that says "R2" needs the WebP at the form's upload key (see the module docstring)."""
    if args.state == "faulted" or form.state is not FormState.PROCESSING:
        return
    if R2_MARKER not in args.result.values():
        return
    stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{form.id}.webp")
    if stored is None or not is_webp(stored.data):
        what = "nothing was uploaded" if stored is None else "what was uploaded is not a WebP"
        raise HordeError(
            400,
            "R2UploadMissing",
            f"Form {form.id} was submitted as R2 but {what} at its r2_upload URL (a local horde check).",
        )


def download_url(horde: LocalHorde, request: web.Request, form: InterrogationForm) -> str:
    """The URL an `"R2"` value is replaced with: the uploaded image, valid 1800 s from now."""
    return horde.signer.url(
        horde.public_base(request),
        "GET",
        GENERATIONS_BUCKET,
        f"{form.id}.webp",
        issued=horde.clock.now(),
        lifetime=URL_LIFETIME_S,
    )


async def interrogate_submit_handler(request: web.Request) -> web.Response:
    """`POST /v2/interrogate/submit`."""
    horde = horde_of(request)
    args, api_key = await parse_interrogate_submit(request)
    form = horde.state.alchemy.forms.get(args.id)
    if form is None:
        raise HordeError(404, "InvalidJobID", f"Processing Job with ID {args.id} does not exist.")
    user = horde.state.user_by_key(api_key)
    worker = horde.state.workers.get(form.worker_id or "")  # None: never popped, nobody may submit it
    if user is None or worker is None or user.id != worker.owner_id:
        horde.state.record_submit(args.id, SubmitAttempt(args.state, applied=False))
        if user is None:
            logger.error(f"local horde: form submit with unknown key {key_fingerprint(api_key)} → 500 (server bug)")
            return internal_error_response()
        raise HordeError(403, "WrongCredentials", WRONG_CREDENTIALS_MESSAGE)
    try:
        check_upload(horde, form, args)
    except HordeError:
        horde.state.record_submit(args.id, SubmitAttempt(args.state, applied=False))
        raise
    horde.state.record_submit(args.id, SubmitAttempt(args.state, applied=form.state is FormState.PROCESSING))
    reward = deliver_form(horde.state, form, args.result, args.state, download_url(horde, request, form))
    if reward == FAULTED:
        return web.json_response({"reward": 0.0})
    if reward == NOT_PROCESSING and not worker.maintenance:
        raise HordeError(400, "DuplicateGen", f"Processing Generation with ID {args.id} already submitted.")
    return web.json_response({"reward": reward})
