"""The inference child: the inference core (`inference/core.py`) behind a pipe, and the process entry point.

`InferenceChild` turns one `RunJob` into one `JobDone` or `JobFailed` through the core, and one `RunForm`
(a post-processor alchemy form) into one `FormDone` through `PostProcessForms`. The entry point
sets up the process, builds the configured backend and serves jobs. Nothing here imports torch; a real
backend imports it inside the child, when it is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NoReturn

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.inference.backend import InferenceBackend, ProgressSink, StageSink
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.inference.forms import PostProcessForms
from horde_worker_regen.inference.hordelib_settings import HordelibSettings
from horde_worker_regen.jobs.spec import GenerationFailed, Stage
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
    FormDone,
    JobDone,
    JobFailed,
    JobProgress,
    JobStage,
    ModelPreloaded,
    Preload,
    RunForm,
    RunJob,
)

ExitProcess = Callable[[int], NoReturn]


@dataclass(frozen=True)
class InferenceChildConfig:
    """Everything an inference child needs, picklable for the `spawn` start method."""

    logging: ChildLogging
    backend: str
    fake: FakeBackendSettings
    hordelib: HordelibSettings | None = None
    device_index: int | None = None  # the GPU this child is pinned to; None: the CPU


class InferenceChild:
    """The inference core behind the pipe: work messages in, answer messages out."""

    def __init__(self, core: InferenceCore, incarnation: int) -> None:
        self.core = core
        self.forms = PostProcessForms(core.backend)
        self.incarnation = incarnation

    def handle(self, work: Work) -> ChildMessage:
        """Answer one work message."""
        if isinstance(work, RunJob):
            outcome = self.core.run(work.spec, work.inputs)
            if isinstance(outcome, GenerationFailed):
                return JobFailed(self.incarnation, work.spec.job_key, outcome)
            return JobDone(self.incarnation, work.spec.job_key, outcome)
        if isinstance(work, Preload):
            return ModelPreloaded(self.incarnation, work.model, self.core.preload(work.model) or "")
        if isinstance(work, RunForm):
            return FormDone(self.incarnation, self.forms.run(work.request))
        return ChildFailed(self.incarnation, f"an inference child cannot handle {type(work).__name__}")


def build_backend(
    config: InferenceChildConfig,
    progress: ProgressSink | None = None,
    stage: StageSink | None = None,
    incarnation: int = 0,
    *,
    exit_process: ExitProcess = os._exit,
) -> InferenceBackend:
    """The configured backend; hordelib is imported here, in the child, never in the main process.

    `exit_process` is how the fake backend's simulated crashes end what it runs in (the process)."""
    if config.backend == "fake":
        from horde_worker_regen.inference.fake import FakeInferenceBackend

        return FakeInferenceBackend(
            config.fake, progress, config.device_index, stage, incarnation, exit_process=exit_process
        )
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
        backend = build_backend(config, report_progress, report_stage, incarnation)
    except Exception as error:
        report_startup_failure(link, error)
        return
    child = InferenceChild(InferenceCore(backend), incarnation)
    serve(link, config.backend, child.handle, device, backend.post_processors)
