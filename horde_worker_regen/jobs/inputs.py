"""Fetching a job's input images (source, mask, extra sources) before it is queued.

URLs are downloaded with a size cap and retried on transient errors while the deadline allows;
base64 text (from a horde that does not send URLs) is decoded. What arrives must be an image
(WebP, PNG, JPEG or GIF by its magic bytes). A failure never crashes the job: it becomes a
`gen_metadata` entry (`download_failed`) and, for the source image, a txt2img fallback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.pop import SourceRefs
from horde_worker_regen.processes.messages import ExtraSourceImage, GenerationSpec, JobInputs
from horde_worker_regen.scheduling.policy import retry_delay

MAX_INPUT_BYTES = 24 * 1024 * 1024
SOURCE_ATTEMPTS = 3
EXTRA_SOURCE_ATTEMPTS = 5
# Leave this much of the ttl for generating and reporting once the inputs are in.
DEADLINE_RESERVE_S = 30.0
_PERMANENT_STATUSES = {400, 401, 403, 404, 410, 413}


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


@dataclass
class InputFetcher:
    """Fetches inputs through the horde client, within a job's deadline."""

    client: HordeClient
    clock: Callable[[], float] = time.monotonic
    max_bytes: int = MAX_INPUT_BYTES
    sleep: Callable[[float], Any] = field(default=asyncio.sleep)

    async def fetch_one(self, reference: str, deadline: float, attempts: int) -> bytes:
        """One image, by URL or inline base64; raises HordeRequestError or InputRejected."""
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
            if image_kind(data) is None:
                raise InputRejected(f"not an image ({len(data)} bytes)")
            return data
        raise AssertionError("unreachable")

    async def _get(self, reference: str) -> bytes:
        if reference.startswith(("http://", "https://")):
            return await self.client.download(reference, self.max_bytes)
        data = _decode_inline(reference)
        if len(data) > self.max_bytes:
            raise InputRejected(f"image of {len(data)} bytes is too large")
        return data

    async def _try(self, what: str, reference: str, deadline: float, attempts: int) -> bytes | None:
        try:
            return await self.fetch_one(reference, deadline, attempts)
        except (HordeRequestError, InputRejected) as error:
            logger.warning(f"Could not fetch the {what}: {error}")
            return None

    async def fetch(self, sources: SourceRefs, deadline: float) -> tuple[JobInputs, list[dict[str, Any]]]:
        """Every input of a job, and the gen_metadata entries for those that failed."""
        metadata: list[dict[str, Any]] = []
        source = mask = None
        if sources.source_image:
            source = await self._try("source image", sources.source_image, deadline, SOURCE_ATTEMPTS)
            if source is None:
                metadata.append({"type": "source_image", "value": "download_failed"})
        if sources.source_mask and source is not None:
            mask = await self._try("source mask", sources.source_mask, deadline, SOURCE_ATTEMPTS)
            if mask is None:
                metadata.append({"type": "source_mask", "value": "download_failed"})
        extras: list[ExtraSourceImage] = []
        for index, (reference, strength) in enumerate(sources.extra_source_images):
            data = await self._try(f"extra source image {index}", reference, deadline, EXTRA_SOURCE_ATTEMPTS)
            if data is None:
                metadata.append({"type": "extra_source_images", "value": "download_failed", "ref": str(index)})
            else:
                extras.append(ExtraSourceImage(data, strength))
        return JobInputs(source, mask, tuple(extras)), metadata


def spec_for_inputs(spec: GenerationSpec, inputs: JobInputs) -> GenerationSpec:
    """The spec to run: txt2img when the job had a source image that could not be fetched."""
    if spec.source_processing != "txt2img" and inputs.source_image is None:
        return replace(spec, source_processing="txt2img")
    return spec
