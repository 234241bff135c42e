"""The image an interrogation request is about: base64 decoded and kept in the source bucket, or the
requester's URL, fetched once (at most 5 MB) to learn its size and then passed through to alchemists.

As `ensure_source_image_uploaded` and `calculate_image_tiles` do on the server, the image's size is
needed up front: it sets the request's tiles, hence the post-processors' value and which alchemists'
`max_tiles` it fits. A value is a URL when it starts with `http://` or `https://` (the server tests
for "http" anywhere, which a long base64 string can contain by chance).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import aiohttp
from PIL import Image

from horde_worker_regen.localhorde.alchemy_forms import MAX_SOURCE_BYTES
from horde_worker_regen.localhorde.errors import HordeError

FETCH_TIMEOUT_S = 10.0
FETCH_CHUNK_BYTES = 256 * 1024
DEFAULT_FAILURE = (
    "Please ensure the source image payload is either a URL containing an image or a valid base64 encoded image."
)
TOO_LARGE = "Provided image cannot be larger than 5Mb"


def image_validation_failed(message: str = DEFAULT_FAILURE, rc: str = "ImageValidationFailed") -> HordeError:
    """400 `ImageValidationFailed` (or another rc) with the server's prefix."""
    return HordeError(400, rc, f"Image validation failed. {message}")


def is_url(value: str) -> bool:
    """A requester's URL rather than base64 data."""
    return value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class DecodedImage:
    """A source image's bytes, pixel size and media type."""

    data: bytes
    width: int
    height: int
    content_type: str


def measure(data: bytes) -> DecodedImage:
    """Read an image's header for its size; anything Pillow cannot open fails validation."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image_format = (image.format or "webp").lower()
    except Exception as error:  # Pillow raises many kinds (and DecompressionBombError) for bad input
        raise image_validation_failed() from error
    return DecodedImage(data, width, height, f"image/{image_format}")


def decode_base64(value: str) -> DecodedImage:
    """A base64 source image, decoded and measured."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise image_validation_failed() from error
    return measure(data)


async def fetch_size(url: str) -> tuple[int, int]:
    """Download a requester's URL (at most 5 MB) and measure it; any failure is a 400."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    data = bytearray()
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise image_validation_failed()
            async for chunk in response.content.iter_chunked(FETCH_CHUNK_BYTES):
                data += chunk
                if len(data) > MAX_SOURCE_BYTES:
                    raise image_validation_failed(TOO_LARGE)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise image_validation_failed() from error
    image = measure(bytes(data))
    return image.width, image.height
