"""The alchemy analysis forms (caption, interrogation, nsfw): one form's source image in, its result out.

Run by the safety core in the safety child, which already holds CLIP and the NSFW checker. The result
is exactly the object the horde takes on submit (horde-v13-and-alchemy.md §3.2):

- `nsfw`: `{"nsfw": bool}`, the image check's verdict without a prompt, NSFW as the censoring policy
  sees it when the requester asks for the censor (CSAM counts as NSFW);
- `interrogation`: `{"interrogation": {category: [{"text": str, "confidence": float}, ...]}}`, the top
  five labels of each category ranked here (`ranking.INTERROGATION_CATEGORIES`), confidence in percent;
  the horde's other categories (tags, techniques) are sent empty;
- `caption`: `{"caption": str}`, with the payload's options read by `caption_options`.

A form that cannot be done (an undecodable source, an unknown form, a model failure) gets an outcome with
an `error` and no result; the child goes on serving.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from PIL import Image, UnidentifiedImageError

from horde_worker_regen.jobs.alchemy import ANALYSIS_FORMS, FormOutcome, FormRequest
from horde_worker_regen.jobs.spec import CensorPolicy
from horde_worker_regen.safety.backend import FormBackend, SafetyBackend
from horde_worker_regen.safety.caption_options import caption_options
from horde_worker_regen.safety.policy import censorship_for
from horde_worker_regen.safety.ranking import RESULT_CATEGORIES

# The nsfw form asks what the censoring policy asks when the requester wants NSFW censored.
NSFW_FORM_POLICY = CensorPolicy(censor_nsfw=True)


class FormRefused(Exception):
    """The form cannot be run as asked (its source or its name); the message says why."""


def decoded(source: bytes) -> Image.Image:
    """The source image as RGB, or FormRefused when it is not an image PIL can read."""
    try:
        with Image.open(io.BytesIO(source)) as opened:
            return opened.convert("RGB")
    except UnidentifiedImageError:
        raise FormRefused(f"the source image ({len(source)} bytes) is in no image format this worker reads") from None
    except Exception as error:  # PIL raises many kinds for broken files (OSError, SyntaxError, bombs, ...)
        raise FormRefused(f"the source image cannot be decoded ({type(error).__name__}: {error})") from None


def form_backend(backend: SafetyBackend, form: str) -> FormBackend:
    """The backend, if it runs `form`; FormRefused otherwise."""
    if form not in ANALYSIS_FORMS:
        raise FormRefused(f"the safety child does not run the {form!r} form (it runs {', '.join(ANALYSIS_FORMS)})")
    if not isinstance(backend, FormBackend):
        raise FormRefused(f"the {backend.name} safety backend runs no alchemy forms")
    return backend


def form_result(backend: SafetyBackend, request: FormRequest) -> dict[str, Any]:
    """The result object of one form; raises FormRefused, or whatever the model raised."""
    runner = form_backend(backend, request.form)
    picture = decoded(request.source_image)
    if request.form == "nsfw":
        scores = runner.check(request.source_image, "")
        return {"nsfw": censorship_for(scores, NSFW_FORM_POLICY) is not None}
    if request.form == "interrogation":
        rankings = runner.interrogate(picture)
        ranked = {
            category: [{"text": ranked.text, "confidence": float(ranked.confidence)} for ranked in ranking]
            for category, ranking in rankings.items()
        }
        # Every category of the horde's result, an unranked one empty: requesters' SDKs require all seven.
        return {"interrogation": {category: ranked.get(category, []) for category in RESULT_CATEGORIES} | ranked}
    return {"caption": runner.caption(picture, caption_options(request.payload))}


def run_form(backend: SafetyBackend, request: FormRequest, clock: Callable[[], float] = time.monotonic) -> FormOutcome:
    """Run one analysis form: its result, or why there is none (the caller goes on either way)."""
    started = clock()
    try:
        result = form_result(backend, request)
    except FormRefused as refused:
        logger.warning(f"Form {request.form_id} ({request.form}) refused: {refused}")
        return FormOutcome(request.form_id, request.form, error=str(refused), seconds=clock() - started)
    except Exception as error:
        logger.exception(f"Form {request.form_id} ({request.form}) failed")
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        return FormOutcome(request.form_id, request.form, error=reason, seconds=clock() - started)
    seconds = clock() - started
    logger.debug(f"Form {request.form_id} ({request.form}) done in {seconds:.2f}s")
    return FormOutcome(request.form_id, request.form, result=result, seconds=seconds)
