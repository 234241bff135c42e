"""The R2 stand-in: `PUT` to an issued upload URL stores the bytes; signed `GET`s read them back.

Answers are S3-shaped: 200 with an `ETag` on upload, 403 XML once a URL has expired or when its
signature does not match, 404 XML for a missing object.
"""

from __future__ import annotations

import hashlib

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.context import horde_of
from horde_worker_regen.localhorde.faults import expired_response
from horde_worker_regen.localhorde.state import StoredObject
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, SOURCES_BUCKET, UrlCheck

MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, text=body, content_type="application/xml")


def _check(request: web.Request, method: str, bucket: str, key: str) -> web.Response | None:
    horde = horde_of(request)
    outcome = horde.signer.check(method, bucket, key, request.query, horde.clock.now())
    if outcome is UrlCheck.EXPIRED:
        return expired_response()
    if outcome is UrlCheck.INVALID:
        return _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
    return None


async def upload_handler(request: web.Request) -> web.Response:
    """`PUT /r2/stable-horde/{key}`: store a generated image."""
    key = request.match_info["key"]
    if (refusal := _check(request, "PUT", GENERATIONS_BUCKET, key)) is not None:
        return refusal
    data = await request.read()
    if len(data) > MAX_UPLOAD_BYTES:
        return _s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    horde = horde_of(request)
    # reGen uploads with no Content-Type; R2 then serves the object as the bucket's default type.
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("image/"):
        content_type = "image/webp"
    horde.state.objects.put(GENERATIONS_BUCKET, key, StoredObject(data, content_type, horde.clock.now()))
    logger.debug(f"local horde: stored {len(data)} bytes as {key}")
    return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})  # noqa: S324


async def _serve(request: web.Request, bucket: str) -> web.Response:
    key = request.match_info["key"]
    if (refusal := _check(request, "GET", bucket, key)) is not None:
        return refusal
    stored = horde_of(request).state.objects.get(bucket, key)
    if stored is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    return web.Response(body=stored.data, content_type=stored.content_type.split(";")[0])


async def download_handler(request: web.Request) -> web.Response:
    """`GET /r2/stable-horde/{key}`: a generated image, as a requester fetches it."""
    return await _serve(request, GENERATIONS_BUCKET)


async def source_handler(request: web.Request) -> web.Response:
    """`GET /r2/stable-horde-source-images/{key}`: a source image, mask or extra image."""
    return await _serve(request, SOURCES_BUCKET)
