"""Post-processor alchemy forms in the inference child: one source image through one post-processor.

The parent has fetched the source and checked it (type, size, pixels); it is decoded again here within
the same pixel limit, run through the backend's post-processor (the path a job's post-processing takes,
`InferenceBackend.post_process`), and encoded as WebP at quality 95, as the legacy alchemist uploaded it.
A face fixer's `facefixer_strength` comes from the form's payload (a string), 0.5 when absent or
unreadable, as the legacy alchemist read it (horde-v13-and-alchemy.md §3.2). Every failure becomes a
`FormOutcome` with its `error`: the child stays usable.

No torch here: the backend imports what it needs.
"""

from __future__ import annotations

import io
import time

from loguru import logger
from PIL import Image

from horde_worker_regen.inference.backend import InferenceBackend, InferenceError
from horde_worker_regen.inference.post_processing_plan import KNOWN, facefixer_strength
from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest

ALCHEMY_FACEFIXER_STRENGTH = 0.5
WEBP_QUALITY = 95
# The parent's input fetcher refuses larger sources (pipeline/inputs.py MAX_INPUT_PIXELS); the same bound here.
MAX_SOURCE_PIXELS = 4096 * 4096
WEBP_MAX_SIDE = 16383  # the WebP format's largest side


class FormRefused(ValueError):
    """The form cannot be run here (a name or a source this child does not take)."""


def decode_source(data: bytes, max_pixels: int = MAX_SOURCE_PIXELS) -> Image.Image:
    """The source image, fully decoded, once its header is within `max_pixels`; FormRefused otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise FormRefused(f"a source of {width}x{height} pixels (at most {max_pixels} are taken)")
            opened.load()
            return opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        if isinstance(error, FormRefused):
            raise
        raise FormRefused(f"the source image does not decode ({error})") from None


def encode_webp(image: Image.Image) -> bytes:
    """The result as WebP (RGBA kept for a stripped background); FormRefused beyond WebP's largest side."""
    if max(image.size) > WEBP_MAX_SIDE:
        raise FormRefused(f"a result of {image.width}x{image.height} pixels is larger than WebP can hold")
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()


class PostProcessForms:
    """Runs post-processor forms on an inference backend."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend

    def run(self, request: FormRequest) -> FormOutcome:
        """The form's WebP image, or why there is none; never raises for the form's sake."""
        started = time.monotonic()
        try:
            image = self._post_processed(request)
        except (FormRefused, InferenceError) as error:
            logger.warning(f"Form {request.form_id} ({request.form}) failed: {error}")
            return self._failed(request, str(error), started)
        except Exception as error:  # a backend bug fails the form, not the process
            logger.exception(f"Form {request.form_id} ({request.form}): unexpected error")
            return self._failed(request, f"{type(error).__name__}: {error}", started)
        seconds = time.monotonic() - started
        logger.debug(f"Form {request.form_id} ({request.form}) done in {seconds:.3f}s")
        return FormOutcome(request.form_id, request.form, image=image, seconds=seconds)

    def _post_processed(self, request: FormRequest) -> bytes:
        if request.lane != "post_processing" or request.form not in KNOWN:
            raise FormRefused(f"an inference process does not run the form {request.form!r}")
        source = decode_source(request.source_image)
        strength = facefixer_strength(request.payload, default=ALCHEMY_FACEFIXER_STRENGTH)
        return encode_webp(self.backend.post_process(request.form, source, strength))

    @staticmethod
    def _failed(request: FormRequest, reason: str, started: float) -> FormOutcome:
        return FormOutcome(request.form_id, request.form, error=reason, seconds=time.monotonic() - started)
