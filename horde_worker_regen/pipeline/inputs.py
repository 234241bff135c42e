"""Fetching a job's input images (source, mask, extra sources) before it is queued.

URLs (http and https only; every redirect hop checked by `UrlGuard`, see horde/url_guard.py) are
downloaded with a size cap enforced while streaming and a total timeout, and retried on transient
errors while the deadline allows; base64 text (from a horde that does not send URLs) is decoded.
What arrives must be an image (WebP, PNG, JPEG or GIF by its magic bytes) whose header declares at
most `MAX_INPUT_PIXELS` pixels, checked before anything is decoded (a decompression bomb is refused
unread), and that then decodes completely. A failure never crashes the job: it becomes a
`gen_metadata` entry (`download_failed` when it could not be fetched, `parse_failed` when what came
is not a usable image) with the reason in the log and, for the source image, a txt2img fallback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger
from PIL import Image
from yarl import URL

from horde_worker_regen.horde.client import DOWNLOAD_TIMEOUT_S, HordeClient
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.url_guard import UnsafeUrl, UrlGuard
from horde_worker_regen.jobs.spec import ExtraSourceImage, GenerationSpec, JobInputs, SourceRefs
from horde_worker_regen.scheduling.policy import retry_delay

MAX_INPUT_BYTES = 24 * 1024 * 1024
# The horde's inputs are at most 3072x3072 (horde-api.md §1.2); a little room, and nothing near a bomb.
MAX_INPUT_PIXELS = 4096 * 4096
SOURCE_ATTEMPTS = 3
EXTRA_SOURCE_ATTEMPTS = 5
# Leave this much of the ttl for generating and reporting once the inputs are in.
DEADLINE_RESERVE_S = 30.0
_PERMANENT_STATUSES = {310, 400, 401, 403, 404, 410, 413}
_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,15}:")  # base64 text never holds a ':'


class InputRejected(ValueError):
    """The input is not an acceptable image; retrying will not help."""


def image_kind(data: bytes) -> str | None:
    """The image format from its magic bytes: webp, png, jpeg, gif; None if not an image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def _decode_inline(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputRejected("neither a URL nor valid base64") from None


def check_image(data: bytes, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[int, int]:
    """The image's size, once its header is within `max_pixels` and the whole image decodes.

    Raises InputRejected. Only the header is read before the size check, so a decompression bomb is
    refused before a single pixel is decoded (Pillow's own MAX_IMAGE_PIXELS guard is a backstop).
    """
    if image_kind(data) is None:
        raise InputRejected(f"not an image ({len(data)} bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise InputRejected(f"an image of {width}x{height} pixels (at most {max_pixels} are accepted)")
            image.load()
    except Image.DecompressionBombError as error:
        raise InputRejected(f"a decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputRejected(f"the image does not decode ({error})") from None
    return width, height


@dataclass
class InputFetcher:
    """Fetches inputs through the horde client, within a job's deadline."""

    client: HordeClient
    clock: Callable[[], float] = time.monotonic
    max_bytes: int = MAX_INPUT_BYTES
    sleep: Callable[[float], Any] = field(default=asyncio.sleep)
    guard: UrlGuard = field(default_factory=UrlGuard)
    timeout_s: float = DOWNLOAD_TIMEOUT_S
    max_pixels: int = MAX_INPUT_PIXELS

    async def fetch_one(self, reference: str, deadline: float, attempts: int) -> bytes:
        """One image, by URL or inline base64; raises HordeRequestError, InputRejected or UnsafeUrl."""
        for attempt in range(attempts):
            try:
                data = await self._get(reference)
            except HordeRequestError as error:
                delay = retry_delay(attempt)
                permanent = error.status in _PERMANENT_STATUSES
                if permanent or attempt + 1 == attempts or self.clock() + delay > deadline - DEADLINE_RESERVE_S:
                    raise
                await self.sleep(delay)
                continue
            await asyncio.to_thread(check_image, data, self.max_pixels)  # decoding stays off the event loop
            return data
        raise AssertionError("unreachable")

    async def _get(self, reference: str) -> bytes:
        if _HAS_SCHEME.match(reference):
            await self.guard.check(URL(reference))  # refuses file:, ftp:, data: and the like outright
            return await self.client.download(reference, self.max_bytes, timeout_s=self.timeout_s, guard=self.guard)
        data = _decode_inline(reference)
        if len(data) > self.max_bytes:
            raise InputRejected(f"image of {len(data)} bytes is too large")
        return data

    async def _try(self, what: str, reference: str, deadline: float, attempts: int) -> bytes | str:
        """The image, or the gen_metadata value that tells why there is none."""
        try:
            return await self.fetch_one(reference, deadline, attempts)
        except (HordeRequestError, UnsafeUrl) as error:
            logger.warning(f"Could not fetch the {what}: {error}")
            return "download_failed"
        except InputRejected as error:
            logger.warning(f"The {what} is not usable: {error}")
            return "parse_failed"

    async def fetch(self, sources: SourceRefs, deadline: float) -> tuple[JobInputs, list[dict[str, Any]]]:
        """Every input of a job, and the gen_metadata entries for those that failed."""
        metadata: list[dict[str, Any]] = []
        source = mask = None
        if sources.source_image:
            got = await self._try("source image", sources.source_image, deadline, SOURCE_ATTEMPTS)
            if isinstance(got, str):
                metadata.append({"type": "source_image", "value": got})
            else:
                source = got
        if sources.source_mask and source is not None:
            got = await self._try("source mask", sources.source_mask, deadline, SOURCE_ATTEMPTS)
            if isinstance(got, str):
                metadata.append({"type": "source_mask", "value": got})
            else:
                mask = got
        extras: list[ExtraSourceImage] = []
        for index, (reference, strength) in enumerate(sources.extra_source_images):
            got = await self._try(f"extra source image {index}", reference, deadline, EXTRA_SOURCE_ATTEMPTS)
            if isinstance(got, str):
                metadata.append({"type": "extra_source_images", "value": got, "ref": str(index)})
            else:
                extras.append(ExtraSourceImage(got, strength))
        return JobInputs(source, mask, tuple(extras)), metadata


def spec_for_inputs(spec: GenerationSpec, inputs: JobInputs) -> GenerationSpec:
    """The spec to run: txt2img when the job had a source image that could not be fetched."""
    if spec.source_processing != "txt2img" and inputs.source_image is None:
        return replace(spec, source_processing="txt2img")
    return spec
