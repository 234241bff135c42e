"""Post-processing jobs wait until strip_background's model is on disk and verified.

The image pop has no list of post-processors: with `allow_post_processing` the horde may send any of
those the bridge level claims, and strip_background is in every level. Before `u2net.onnx` is verified
such a job could only fault (rembg must not fetch it unchecked), and faults count towards the horde's
maintenance limit; so while strip_background is wanted and not ready, the pop asks for no
post-processing at all. It is said once when the hold starts and once when it ends. A strip_background
the operator skips (`models_to_skip`) is not waited for.
"""

from __future__ import annotations

from loguru import logger

from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.pipeline.popper import PopLimits

POST_PROCESSING_FLAG = "allow_post_processing"


class PostProcessingGate:
    """The pipeline's pop limits, plus `allow_post_processing: false` while strip_background's file is missing."""

    def __init__(self, limits: PopLimits, files: PostProcessorDownloads) -> None:
        self._limits = limits
        self._files = files
        self._holding = False

    def pop_flags_off(self) -> frozenset[str]:
        """The fault breaker's flags, and post-processing while its one unlisted model is not verified."""
        off = self._limits.pop_flags_off()
        holding = BACKGROUND_REMOVAL in self._files.wanted and BACKGROUND_REMOVAL not in self._files.ready
        if holding != self._holding:
            self._holding = holding
            self._say(holding)
        return off | {POST_PROCESSING_FLAG} if holding else off

    def reopens_in(self) -> float | None:
        """When the fault breaker may allow more by itself (the file's arrival is seen at the next pop)."""
        return self._limits.reopens_in()

    def _say(self, holding: bool) -> None:
        if not holding:
            logger.info("strip_background's model is on disk and verified: post-processing jobs are asked for again")
        elif BACKGROUND_REMOVAL in self._files.failures:
            reason = self._files.failures[BACKGROUND_REMOVAL]
            logger.warning(
                f"No post-processing jobs: strip_background's model could not be fetched ({reason}); the horde "
                "may send it with any post-processing job. Fix the download, or add strip_background to "
                "models_to_skip (its jobs will then fault), and restart"
            )
        else:
            logger.info("Post-processing jobs wait until strip_background's model (u2net.onnx) is on disk and verified")
