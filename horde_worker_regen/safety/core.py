"""The safety core: one job's images in, a verdict for each out (a censor image where needed); and the
alchemy analysis forms (`forms.py`), which use the same models.

No process, no pipe: the safety child runs it behind its pipe (`processes/safety_child.py`); tests and
the in-process child client run it directly. For each image the backend gives NSFW/CSAM scores, the
pure policy decides whether to censor, and a censored image is replaced by the censor image of the
same size, built here so the parent never encodes an image.
"""

from __future__ import annotations

from loguru import logger

from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.jobs.spec import ImagesToCheck, ImageVerdict
from horde_worker_regen.safety.backend import SafetyBackend, SafetyScores
from horde_worker_regen.safety.censor import censor_image
from horde_worker_regen.safety.forms import run_form
from horde_worker_regen.safety.policy import censorship_for


class SafetyCore:
    """Checks and censors the images of one job at a time, and runs analysis forms."""

    def __init__(self, backend: SafetyBackend) -> None:
        self.backend = backend

    def verdict(self, image: bytes, request: ImagesToCheck) -> ImageVerdict:
        """The verdict on one image, with its replacement when it must be censored."""
        try:
            scores = self.backend.check(image, request.prompt)
        except Exception:
            # Unchecked images must not go out: treat a failed check as CSAM, the strictest outcome.
            logger.exception(f"Job {request.job_key}: the safety check failed; censoring the image")
            scores = SafetyScores(is_nsfw=True, is_csam=True)
        censorship = censorship_for(scores, request.policy)
        replacement = censor_image(censorship, request.width, request.height) if censorship else None
        return ImageVerdict(scores.is_nsfw, scores.is_csam, censorship, replacement)

    def check(self, request: ImagesToCheck) -> tuple[ImageVerdict, ...]:
        """Verdicts for every image of the job, in order."""
        verdicts = tuple(self.verdict(image, request) for image in request.images)
        censored = sum(1 for verdict in verdicts if verdict.censorship)
        if censored:
            logger.info(f"Job {request.job_key}: {censored} of {len(verdicts)} image(s) censored")
        return verdicts

    def run_form(self, request: FormRequest) -> FormOutcome:
        """One alchemy analysis form's result, or why there is none (the core stays usable either way)."""
        return run_form(self.backend, request)
