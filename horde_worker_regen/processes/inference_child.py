"""The inference child: `InferenceCore` (a plain class, testable in-process) and the process entry point.

The core turns one `RunJob` into one `JobDone` or `JobFailed`, timing it with the child's monotonic
clock. The entry point sets up the process, builds the configured backend and serves jobs.
Nothing here imports torch; a real backend imports it inside the child, when it is built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from loguru import logger

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.backend import (
    Generation,
    InferenceBackend,
    InferenceError,
    ProgressSink,
    StageSink,
)
from horde_worker_regen.inference.hordelib_settings import HordelibSettings
from horde_worker_regen.processes.child_runtime import (
    ChildLink,
    ChildLogging,
    Work,
    prepare_child_process,
    report_startup_failure,
    serve,
)
from horde_worker_regen.processes.messages import (
    ChildFailed,
    ChildMessage,
    DeviceReport,
    JobDone,
    JobFailed,
    JobProgress,
    JobStage,
    ModelPreloaded,
    Preload,
    RunJob,
    Stage,
)


@dataclass(frozen=True)
class InferenceChildConfig:
    """Everything an inference child needs, picklable for the `spawn` start method."""

    logging: ChildLogging
    backend: str
    fake: FakeBackendSettings
    hordelib: HordelibSettings | None = None
    device_index: int | None = None  # the GPU this child is pinned to; None: the CPU


class InferenceCore:
    """Runs jobs on a backend; no process, no pipe."""

    def __init__(self, backend: InferenceBackend, incarnation: int) -> None:
        self.backend = backend
        self.incarnation = incarnation

    def run(self, job: RunJob) -> JobDone | JobFailed:
        """Generate one job; an error of the backend becomes `JobFailed`, never an exception."""
        spec = job.spec
        started = time.monotonic()
        try:
            result = self.backend.generate(spec, job.inputs)
        except InferenceError as error:
            logger.warning(f"Job {spec.job_key} failed ({error.kind}): {error}")
            return JobFailed(
                self.incarnation, spec.job_key, str(error), started, time.monotonic(), error.kind, error.subject
            )
        except Exception as error:  # a backend bug must fault the job, not kill the slot
            logger.exception(f"Job {spec.job_key}: unexpected error in the backend")
            return JobFailed(
                self.incarnation, spec.job_key, f"{type(error).__name__}: {error}", started, time.monotonic()
            )
        finished = time.monotonic()
        images, metadata = (result.images, result.gen_metadata) if isinstance(result, Generation) else (result, ())
        if len(images) != spec.n_iter:
            reason = f"the backend returned {len(images)} images for a batch of {spec.n_iter}"
            logger.error(f"Job {spec.job_key}: {reason}")
            return JobFailed(self.incarnation, spec.job_key, reason, started, finished)
        logger.debug(f"Job {spec.job_key}: {spec.n_iter} image(s) in {finished - started:.3f}s")
        return JobDone(self.incarnation, spec.job_key, tuple(images), started, finished, metadata)

    def preload(self, work: Preload) -> ModelPreloaded:
        """Load a model with no job; a failure is reported, the child stays usable."""
        try:
            self.backend.preload(work.model)
        except Exception as error:  # the next job loads it again, and faults if it cannot
            logger.warning(f"Preloading {work.model} failed: {error}")
            return ModelPreloaded(self.incarnation, work.model, f"{type(error).__name__}: {error}")
        logger.debug(f"Preloaded {work.model}")
        return ModelPreloaded(self.incarnation, work.model)

    def handle(self, work: Work) -> ChildMessage:
        """Answer one work message."""
        if isinstance(work, RunJob):
            return self.run(work)
        if isinstance(work, Preload):
            return self.preload(work)
        return ChildFailed(self.incarnation, f"an inference child cannot handle {type(work).__name__}")


def build_backend(
    config: InferenceChildConfig,
    progress: ProgressSink | None = None,
    stage: StageSink | None = None,
    incarnation: int = 0,
) -> InferenceBackend:
    """The configured backend; hordelib is imported here, in the child, never in the main process."""
    if config.backend == "fake":
        from horde_worker_regen.inference.fake import FakeInferenceBackend

        return FakeInferenceBackend(config.fake, progress, config.device_index, stage, incarnation)
    if config.backend == "hordelib" and config.hordelib is not None:
        from horde_worker_regen.inference.hordelib_backend import HordelibBackend

        return HordelibBackend(config.hordelib, progress, stage)
    raise ValueError(f"inference backend {config.backend!r} is not available in this version")


def pin_and_report(config: InferenceChildConfig) -> DeviceReport | None:
    """Pin this process to its GPU (before any torch import) and describe that GPU; None on the CPU."""
    if config.device_index is None:
        return None
    from horde_worker_regen.devices.pinning import pin_to_device, report_device, report_fake_device

    pin_to_device(config.device_index)
    if config.backend == "fake":
        return report_fake_device(config.fake, config.device_index)
    return report_device(config.device_index)


def inference_main(connection: Connection, incarnation: int, config: InferenceChildConfig) -> None:
    """Process entry point (spawn target)."""
    prepare_child_process(config.logging)
    link = ChildLink(connection, incarnation)
    try:
        device = pin_and_report(config)
    except Exception as error:
        report_startup_failure(link, error)
        return

    def report_progress(job_key: str, step: int, total: int) -> None:
        link.send(JobProgress(incarnation, job_key, step, total))

    def report_stage(job_key: str, stage: Stage) -> None:
        link.send(JobStage(incarnation, job_key, stage))

    try:
        core = InferenceCore(build_backend(config, report_progress, report_stage, incarnation), incarnation)
    except Exception as error:
        report_startup_failure(link, error)
        return
    serve(link, config.backend, core.handle, device)
