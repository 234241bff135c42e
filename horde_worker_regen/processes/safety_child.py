"""The safety child: the safety core (`safety/core.py`) behind a pipe, and the process entry point.

Every generated image passes through it before anything is uploaded; it also runs the alchemy analysis
forms (caption, interrogation, nsfw), which use the same models.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

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
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildFailed,
    ChildMessage,
    FormDone,
    RunForm,
    SafetyChecked,
)
from horde_worker_regen.safety.backend import SafetyBackend
from horde_worker_regen.safety.core import SafetyCore
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


class SafetyChild:
    """The safety core behind the pipe: `CheckImages` in, `SafetyChecked` out; `RunForm` in, `FormDone` out."""

    def __init__(self, core: SafetyCore, incarnation: int) -> None:
        self.core = core
        self.incarnation = incarnation

    def handle(self, work: Work) -> ChildMessage:
        """Answer one work message."""
        if isinstance(work, CheckImages):
            return SafetyChecked(self.incarnation, work.job_key, self.core.check(work.request))
        if isinstance(work, RunForm):
            return FormDone(self.incarnation, self.core.run_form(work.request))
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
        child = SafetyChild(SafetyCore(build_safety_backend(config)), incarnation)
    except Exception as error:
        report_startup_failure(link, error)
        return
    serve(link, config.backend, child.handle)
