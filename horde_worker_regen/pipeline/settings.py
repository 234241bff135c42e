"""What the pipeline is built from: its settings (read once from the configuration) and its collaborators.

`PipelineSettings` holds only the figures the pipeline's parts use; `PipelineServices` the objects it
works with; `PipelineContext` what every part shares once the pipeline is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.fault_guard import FaultGuard
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.recycling import RecyclePolicy
from horde_worker_regen.pipeline.reporting import IdReporter
from horde_worker_regen.pipeline.spool import ResultSpool
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.scheduling.breaker import BreakerSettings


@dataclass(frozen=True)
class CensorSettings:
    """What decides how a job's images are censored, beside the job's own request."""

    worker_nsfw: bool
    censorlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class InferenceSettings:
    """How long each stage may take, when a child is recycled, how often a lost job is retried."""

    gpu_limits: StageLimits
    cpu_limits: StageLimits
    recycling: RecyclePolicy
    job_retries: int


@dataclass(frozen=True)
class PipelineSettings:
    """The configuration as the pipeline uses it."""

    inference: InferenceSettings
    censor: CensorSettings
    breaker: BreakerSettings

    @classmethod
    def from_bridge_data(cls, data: BridgeData) -> PipelineSettings:
        """The settings of a worker configured by `data`."""
        inference = InferenceSettings(
            gpu_limits=StageLimits.from_bridge_data(data),
            cpu_limits=StageLimits.from_bridge_data(data, on_cpu=True),
            recycling=RecyclePolicy.from_bridge_data(data),
            job_retries=data.job_retries,
        )
        breaker = BreakerSettings.from_minutes(
            data.fault_breaker_cooldown, data.quarantine_model_after_strikes, data.max_batch
        )
        return cls(inference, CensorSettings(data.nsfw, tuple(data.censorlist)), breaker)


@dataclass(frozen=True)
class PipelineServices:
    """The objects the pipeline works with (the optional ones are off when None)."""

    supervisor: ChildClient
    registry: JobRegistry
    stats: WorkerStats
    submitter: IdReporter  # the `Submitter`
    fetcher: InputFetcher
    loras: LoraFetcher | None = None  # LoRAs and TIs fetched before a job is queued
    spool: ResultSpool | None = None  # results kept on disk until submitted
    placer: DevicePlacer | None = None  # None: no GPU plan yet (`Pipeline.use_inference` sets one)
    events: EventLog | None = None  # None: a log of its own
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class PipelineContext:
    """What every part of the pipeline shares: the jobs, the event log, the fault guard, figures, the clock."""

    registry: JobRegistry
    events: EventLog
    guard: FaultGuard
    stats: WorkerStats
    clock: Callable[[], float]
