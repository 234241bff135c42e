"""The alchemy requester side: `POST /v2/interrogate/async`, `GET|DELETE /v2/interrogate/status/{id}`,
and `queue_interrogation`, the same validation for tests and tools.

As on the server (`Interrogate`, `InterrogationStatus`): the body's form names must be in the enum
(schema), `source_image` is required (base64, or a URL the server fetches once to measure), images
over 255 tiles are refused, a form named twice is queued once, each form is priced when queued and
paid for only when delivered (no kudos are asked up front), and a requester may have at most 300
forms waiting. The status shows each form's state and result; the overall state is `faulted` when
every form is (also when there are none), `done` when every form is, else `processing`, `waiting` or
`partial`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.alchemy_entities import FormState, Interrogation, InterrogationForm
from horde_worker_regen.localhorde.alchemy_forms import INTERROGATION_EXPIRY_S, MAX_REQUEST_TILES, is_post_processor
from horde_worker_regen.localhorde.alchemy_jobs import cancel_interrogation
from horde_worker_regen.localhorde.alchemy_schemas import INTERROGATE_ASYNC_SCHEMA, InterrogateArgs
from horde_worker_regen.localhorde.alchemy_sources import decode_base64, fetch_size, image_validation_failed, is_url
from horde_worker_regen.localhorde.context import LocalHorde, horde_of
from horde_worker_regen.localhorde.entities import StoredImage, User
from horde_worker_regen.localhorde.errors import HordeError, invalid_api_key
from horde_worker_regen.localhorde.kudos import form_value
from horde_worker_regen.localhorde.state import StoredObject
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET
from horde_worker_regen.localhorde.validation import read_json_object, require_argument, validate_schema

APIKEY_HELP = "A User API key"
# The account's concurrency (30, as `find_user` shows it) times 10, "more concurrency for interrogations".
MAX_ACTIVE_FORMS = 300
ACTIVE_STATES = (FormState.WAITING, FormState.PROCESSING)


def parse_interrogate(body: dict[str, Any]) -> InterrogateArgs:
    """Schema, the required `source_image`, and the webhook's scheme."""
    validate_schema(body, INTERROGATE_ASYNC_SCHEMA)
    require_argument(body.get("source_image") is not None, "source_image", "json", "")
    args: InterrogateArgs = InterrogateArgs.from_body(body)
    if args.webhook and not args.webhook.startswith("https://"):
        raise HordeError(400, "BadRequest", "webhooks need to point to an https endpoint.")
    return args


def check_concurrency(horde: LocalHorde, user: User, wanted: int) -> None:
    """429 `TooManyPrompts` when the requester's forms still to be done plus these exceed 300."""
    store = horde.state.alchemy
    active = sum(
        1
        for i in store.interrogations.values()
        if i.user_id == user.id
        for form in store.forms_of(i)
        if form.state in ACTIVE_STATES
    )
    if active + wanted > MAX_ACTIVE_FORMS:
        raise HordeError(
            429,
            "TooManyPrompts",
            f"Parallel requests ({active + wanted}) exceeded user limit ({MAX_ACTIVE_FORMS}). "
            "Please try again later or request to increase your concurrency.",
        )


def _source(
    horde: LocalHorde, interrogation_id: str, value: str, size: tuple[int, int] | None
) -> tuple[StoredImage, int, int]:
    """The stored source and its size: a URL passes through (its size must be known), base64 is kept."""
    if is_url(value):
        if size is None:
            raise ValueError("a URL source needs its image size (the HTTP endpoint fetches it)")
        return StoredImage(url=value), size[0], size[1]
    image = decode_base64(value)
    key = f"{interrogation_id}.webp"
    horde.state.objects.put(SOURCES_BUCKET, key, StoredObject(image.data, image.content_type, horde.clock.now()))
    return StoredImage(key=key), image.width, image.height


def _forms(interrogation: Interrogation, wanted: list[dict[str, Any]], now: float) -> list[InterrogationForm]:
    """One form per distinct name, in the order asked, each priced for this image."""
    forms: dict[str, InterrogationForm] = {}
    for entry in wanted:
        name = entry["name"]
        if name in forms:
            continue
        value = form_value(name, post_processor=is_post_processor(name), tiles=interrogation.image_tiles)
        forms[name] = InterrogationForm(
            id=str(uuid.uuid4()),
            i_id=interrogation.id,
            name=name,
            payload=entry.get("payload"),
            kudos=value,
            created=now,
        )
    return list(forms.values())


def queue_interrogation(
    horde: LocalHorde,
    user: User,
    body: dict[str, Any],
    *,
    image_size: tuple[int, int] | None = None,
    safe_ip: bool = True,
) -> Interrogation:
    """Validate an async body as the endpoint does and queue it for `user` (Python API).

    A base64 `source_image` is decoded and measured; a URL is not fetched here, so its
    `image_size` (width, height) must be given. `safe_ip=False` makes the request look as if it came
    from a VPN / unsafe address.
    """
    args = parse_interrogate(body)
    check_concurrency(horde, user, len(args.forms))
    now, interrogation_id = horde.clock.now(), str(uuid.uuid4())
    source, width, height = _source(horde, interrogation_id, args.source_image, image_size)
    interrogation = Interrogation(
        id=interrogation_id,
        user_id=user.id,
        source=source,
        width=width,
        height=height,
        created=now,
        expiry=now + INTERROGATION_EXPIRY_S,
        extra_priority=user.kudos,
        trusted_workers=args.trusted_workers,
        slow_workers=args.slow_workers,
        safe_ip=safe_ip,
    )
    if interrogation.image_tiles > MAX_REQUEST_TILES:
        if source.key is not None:
            horde.state.objects.delete(SOURCES_BUCKET, source.key)
        raise image_validation_failed(
            f"Image is too large ({interrogation.image_tiles} tiles) and would cause horde alchemists to run out "
            "of VRAM trying to process it.",
            "SourceImageResolutionExceeded",
        )
    horde.state.alchemy.add(interrogation, _forms(interrogation, args.forms, now))
    return interrogation


async def interrogate_async_handler(request: web.Request) -> web.Response:
    """`POST /v2/interrogate/async` → 202 `{"id"}`."""
    horde = horde_of(request)
    body = await read_json_object(request)
    validate_schema(body, INTERROGATE_ASYNC_SCHEMA)
    require_argument("apikey" in request.headers, "apikey", "headers", APIKEY_HELP)
    args = parse_interrogate(body)
    user = horde.state.user_by_key(request.headers["apikey"])
    if user is None:
        raise invalid_api_key()
    check_concurrency(horde, user, len(args.forms))
    size = await fetch_size(args.source_image) if is_url(args.source_image) else None
    interrogation = queue_interrogation(horde, user, body, image_size=size)
    return web.json_response({"id": interrogation.id}, status=202)


def overall_state(forms: list[InterrogationForm]) -> str:
    """`Interrogation.get_status`'s state."""
    states = {form.state for form in forms}
    if states <= {FormState.FAULTED}:
        return FormState.FAULTED.value
    if states == {FormState.DONE}:
        return FormState.DONE.value
    if FormState.PROCESSING in states:
        return FormState.PROCESSING.value
    if FormState.WAITING in states:
        return FormState.WAITING.value
    return "partial"


def status_body(horde: LocalHorde, interrogation: Interrogation) -> dict[str, Any]:
    """`InterrogationStatus`: the overall state and every form's name, state and result."""
    forms = horde.state.alchemy.forms_of(interrogation)
    return {
        "state": overall_state(forms),
        "forms": [{"form": f.name, "state": f.state.value, "result": f.result or {}} for f in forms],
    }


def _interrogation_or_404(horde: LocalHorde, request_id: str) -> Interrogation:
    interrogation = horde.state.alchemy.interrogations.get(request_id)
    if interrogation is None:
        raise HordeError(404, "RequestNotFound", f"Interrogation with ID '{request_id}' not found.")
    return interrogation


async def interrogate_status_handler(request: web.Request) -> web.Response:
    """`GET /v2/interrogate/status/{id}`."""
    horde = horde_of(request)
    interrogation = _interrogation_or_404(horde, request.match_info["request_id"])
    return web.json_response(status_body(horde, interrogation))


async def interrogate_cancel_handler(request: web.Request) -> web.Response:
    """`DELETE /v2/interrogate/status/{id}`: cancel what is not done; results already in are kept."""
    horde = horde_of(request)
    interrogation = _interrogation_or_404(horde, request.match_info["request_id"])
    cancel_interrogation(horde.state, interrogation)
    return web.json_response(status_body(horde, interrogation))
