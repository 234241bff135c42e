"""The images that replace censored results: one per kind and size, drawn once, WebP-encoded.

They are built in the safety child (Pillow), so the parent never encodes an image.
"""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw

from horde_worker_regen.processes.messages import Censorship

_BACKGROUND: dict[Censorship, tuple[int, int, int]] = {"nsfw": (48, 48, 56), "csam": (0, 0, 0)}
_LABEL: dict[Censorship, str] = {
    "nsfw": "This image was censored by the worker's NSFW filter.",
    "csam": "This image was censored.",
}


@functools.lru_cache(maxsize=32)
def censor_image(kind: Censorship, width: int, height: int) -> bytes:
    """A `width`x`height` WebP that says the result was censored."""
    image = Image.new("RGB", (width, height), _BACKGROUND[kind])
    draw = ImageDraw.Draw(image)
    draw.text((8, height // 2), _LABEL[kind], fill=(220, 220, 220))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()
