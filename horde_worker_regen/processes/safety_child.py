"""The safety child: `SafetyCore` (a plain class, testable in-process) and the process entry point.

Every generated image passes through it. For each image the backend gives NSFW/CSAM scores, the
pure policy decides whether to censor, and a censored image is replaced by the censor image of the
same size, built here so the parent never encodes an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.processes.child_runtime import (
    ChildLink,
    ChildLogging,
    Work,
    prepare_child_process,
    report_startup_failure,
    serve,
)
from horde_worker_regen.processes.messages import CheckImages, ChildFailed, ChildMessage, ImageVerdict, SafetyChecked
from horde_worker_regen.safety.backend import SafetyBackend, SafetyScores
from horde_worker_regen.safety.censor import censor_image
from horde_worker_regen.safety.policy import censorship_for
from horde_worker_regen.safety.weights import WeightsMode, weights_mode


@dataclass(frozen=True)
class SafetyChildConfig:
    """Everything the safety child needs, picklable for the `spawn` start method."""

    logging: ChildLogging
    backend: str
    fake: FakeSafetySettings
    cache_home: Path = Path("./models/")
    on_gpu: bool = False
    weights: WeightsMode = "download"

    @classmethod
    def from_bridge_data(cls, logging: ChildLogging, data: BridgeData) -> SafetyChildConfig:
        """The safety child's settings from the worker's (the weights mode from its env var)."""
        weights = weights_mode() if data.safety_backend == "horde_safety" else "download"
        return cls(logging, data.safety_backend, data.fake_safety, data.cache_home, data.safety_on_gpu, weights)


class SafetyCore:
    """Checks and censors the images of one job at a time; no process, no pipe."""

    def __init__(self, backend: SafetyBackend, incarnation: int) -> None:
        self.backend = backend
        self.incarnation = incarnation

    def verdict(self, image: bytes, request: CheckImages) -> ImageVerdict:
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

    def check(self, request: CheckImages) -> SafetyChecked:
        """Verdicts for every image of the job, in order."""
        verdicts = tuple(self.verdict(image, request) for image in request.images)
        censored = sum(1 for verdict in verdicts if verdict.censorship)
        if censored:
            logger.info(f"Job {request.job_key}: {censored} of {len(verdicts)} image(s) censored")
        return SafetyChecked(self.incarnation, request.job_key, verdicts)

    def handle(self, work: Work) -> ChildMessage:
        """Answer one work message."""
        if isinstance(work, CheckImages):
            return self.check(work)
        return ChildFailed(self.incarnation, f"the safety child cannot handle {type(work).__name__}")


def build_safety_backend(config: SafetyChildConfig) -> SafetyBackend:
    """The configured backend; the heavy imports happen here, in the child, never in the parent."""
    if config.backend == "fake":
        from horde_worker_regen.safety.fake import FakeSafetyBackend

        return FakeSafetyBackend(config.fake)
    if config.backend == "horde_safety":
        from horde_worker_regen.safety.horde_safety_backend import HordeSafetyBackend

        return HordeSafetyBackend(config.cache_home, on_gpu=config.on_gpu, mode=config.weights)
    raise ValueError(f"unknown safety backend {config.backend!r}")


def safety_main(connection: Connection, incarnation: int, config: SafetyChildConfig) -> None:
    """Process entry point (spawn target)."""
    prepare_child_process(config.logging)
    link = ChildLink(connection, incarnation)
    try:
        core = SafetyCore(build_safety_backend(config), incarnation)
    except Exception as error:
        report_startup_failure(link, error)
        return
    serve(link, config.backend, core.handle)
