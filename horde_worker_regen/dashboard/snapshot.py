"""One snapshot of the running worker, the single source of the page, /status.json and /metrics.

Everything is read from the live objects on the event loop (no copies kept in step), so what the
dashboard shows is what the worker itself uses: the slots, the registry, the statistics, the
popper, the model downloads and the alchemist. Only plain JSON types go out; secrets are never read here,
and fault reasons show URLs cut to their host (a presigned URL is a credential).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.alchemy import alchemy_snapshot
from horde_worker_regen.dashboard.duty import SlotDuty
from horde_worker_regen.dashboard.history import HistoryRing
from horde_worker_regen.dashboard.identity import identity_snapshot
from horde_worker_regen.dashboard.telemetry import telemetry_snapshot
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.horde.reasons import without_urls
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.models.background import ModelDownloads
from horde_worker_regen.pipeline.alchemy.alchemist import Alchemist
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.popper import Popper
from horde_worker_regen.pipeline.reporter import RecentFault
from horde_worker_regen.pipeline.slot import Slot
from horde_worker_regen.pipeline.stats import StatsSnapshot, WorkerStats

Snapshot = dict[str, Any]
_QUEUE_STATES = (JobState.POPPED, JobState.INPUTS_FETCHED, JobState.QUEUED)
_AFTER_INFERENCE = (JobState.SAFETY, JobState.UPLOADING)


@dataclass
class DashboardSources:
    """The live parts of the worker the snapshot reads."""

    data: BridgeData
    stats: WorkerStats
    pipeline: Pipeline
    popper: Popper
    downloads: ModelDownloads
    stopping: Callable[[], bool] = lambda: False
    clock: Callable[[], float] = time.monotonic
    alchemist: Alchemist | None = None  # with alchemist: true
    telemetry: Telemetry | None = None  # the GPUs and host as last sampled (None: no sampler runs)
    horde_identity: HordeIdentityWatch | None = None  # the horde's version and this worker's id, as last read
    history: HistoryRing = field(default_factory=HistoryRing)  # the samples /history.json serves
    duty: SlotDuty = field(init=False)

    def __post_init__(self) -> None:
        self.duty = SlotDuty(self.stats)


def build_snapshot(sources: DashboardSources) -> Snapshot:
    """Everything the dashboard shows, as JSON-ready data."""
    figures = sources.stats.snapshot()
    return {
        "worker": _worker(sources, figures.uptime),
        "totals": _totals(sources, figures),
        # The capability level the bridge agent claims (the horde pays by it) and why that one.
        "bridge": {
            "level": figures.bridge_level,
            "agent": sources.popper.bridge_agent,
            "kudos_factor": figures.kudos_factor,
            "reason": figures.bridge_reason,
        },
        "slots": [_slot(sources, slot, figures.uptime) for slot in sources.pipeline.slots.slots],
        "queue": [_queued(record) for record in sources.pipeline.registry if record.state in _QUEUE_STATES],
        "finishing": [_queued(record) for record in sources.pipeline.registry if record.state in _AFTER_INFERENCE],
        "models": _models(sources),
        "downloads": _downloads(sources.downloads),
        "breaker": sources.pipeline.guard.status(),
        "faults": [_fault(fault) for fault in reversed(sources.pipeline.recent_faults)],
        "recent_jobs": _recent_jobs(sources.stats),
        "alchemy": None if sources.alchemist is None else alchemy_snapshot(sources.alchemist, sources.clock()),
        "identity": identity_snapshot(sources.data, sources.popper, sources.horde_identity),
        "telemetry": None
        if sources.telemetry is None
        else telemetry_snapshot(sources.telemetry, _all_kudos(sources, figures.kudos_session)),
    }


def _fault(fault: RecentFault) -> dict[str, Any]:
    return {"at": fault.at, "job": fault.job_key, "images": fault.images, "outcome": fault.outcome,
            "reason": without_urls(fault.reason)}  # fmt: skip


def _worker(sources: DashboardSources, uptime: float) -> dict[str, Any]:
    """Who the worker is, whether it pops, and what the horde says to it."""
    data, popper = sources.data, sources.popper
    return {
        "name": data.dreamer_name if data.dreamer else data.alchemist_name,
        "roles": [role for role in ("dreamer", "alchemist") if getattr(data, role)],
        "uptime_s": uptime,
        "paused": popper.paused,
        "stopping": sources.stopping(),
        "maintenance_message": popper.maintenance_message,
        "state": popper.horde_state,
        "horde_url": data.horde_url,
        # Messages from the horde's moderators to this worker (or to all), newest last.
        "horde_messages": [
            {"id": m.id, "message": m.message, "origin": m.origin, "expiry": m.expiry} for m in popper.horde_messages
        ],
    }


def _totals(sources: DashboardSources, figures: StatsSnapshot) -> dict[str, Any]:
    """The run's counts and rates."""
    return {
        "jobs": figures.jobs,
        "images": figures.images,
        "faulted": figures.faulted,
        "dropped": figures.dropped,
        "kudos_session": figures.kudos_session,
        "kudos_per_hour": figures.kudos_per_hour,
        "kudos_factor": figures.kudos_factor,
        "kudos_credited": _credited(figures.kudos_credited),
        "megapixelsteps": sources.stats.megapixelsteps,
        "megapixelsteps_per_second": figures.megapixelsteps_per_second,
        "jobs_per_hour": figures.jobs_per_hour,
        "idle_s": figures.idle_seconds,
    }


def _all_kudos(sources: DashboardSources, image_kudos: float) -> float:
    """Everything this run earned (images and alchemy forms, both done on the GPUs the energy is measured on)."""
    alchemy = sum(sources.alchemist.stats.kudos.values()) if sources.alchemist is not None else 0.0
    return image_kudos + alchemy


def _recent_jobs(stats: WorkerStats) -> list[dict[str, Any]]:
    """The last jobs that ended, newest first: submitted ones with their kudos, the others with their reason."""
    return [
        {"at": job.at, "job": job.job_key, "model": job.model, "images": job.images, "state": job.state,
         "kudos": job.kudos, "seconds": job.seconds, "reason": None if job.reason is None else without_urls(job.reason)}
        for job in reversed(stats.recent_jobs)
    ]  # fmt: skip


def _credited(credited: Credited | None) -> dict[str, float] | None:
    """What the horde credited this run (read a few times an hour), beside the worker's own estimate."""
    if credited is None:
        return None
    return {"total": credited.total, "jobs": credited.jobs, "uptime": credited.uptime, "read_at": credited.read_at}


def _slot(sources: DashboardSources, slot: Slot, uptime: float) -> dict[str, Any]:
    record = sources.pipeline.registry.get(slot.job_key) if slot.job_key else None
    running_for = 0.0
    job: dict[str, Any] | None = None
    if record is not None:
        started = record.entered.get(JobState.RUNNING)
        running_for = max(0.0, sources.clock() - started) if started is not None else 0.0
        job = _queued(record) | {"running_s": running_for}
    return {
        "index": slot.index,
        # down, starting, idle, busy, preloading, replacing or out_of_service (pipeline/lifecycle.py)
        "state": slot.state.value,
        "model": slot.model,
        "device": _device(slot),
        "job": job,
        "step": slot.step,
        "total_steps": slot.total_steps,
        "busy_s": sources.duty.busy_seconds(slot.index) + running_for,
        "duty": sources.duty.duty(slot.index, running_for, uptime),
    }


def _device(slot: Slot) -> dict[str, Any] | None:
    """Where the slot's child runs: its GPU as the child measured it when it came up, or the CPU."""
    if slot.ready is None:
        return None  # no child has come up yet
    device = slot.device
    if device is None:
        return {"kind": "cpu", "label": "CPU"}
    return {
        "kind": "gpu",
        "label": f"GPU {device.index} ({device.name})",
        "index": device.index,
        "name": device.name,
        "total_mb": device.total_mb,
        "free_mb_at_start": device.free_mb,
    }


def _queued(record: JobRecord) -> dict[str, Any]:
    spec = record.spec
    return {
        "job": record.key,
        "state": record.state.value,
        "model": spec.model,
        "images": len(record.ids),
        "width": spec.width,
        "height": spec.height,
        "steps": spec.steps,
    }


def _models(sources: DashboardSources) -> dict[str, Any]:
    in_memory = {slot.index: slot.model for slot in sources.pipeline.slots.slots}
    return {
        "offered": sources.popper.models,
        "on_disk": sources.downloads.ready,
        "pending": sources.downloads.pending,
        "failed": dict(sources.downloads.failures),
        "in_memory": [{"slot": index, "model": model} for index, model in in_memory.items()],
    }


def _downloads(downloads: ModelDownloads) -> list[dict[str, Any]]:
    return [
        {"file": progress.name, "done_bytes": progress.done_bytes, "total_bytes": progress.total_bytes,
         "bytes_per_second": progress.rate, "eta_s": progress.eta_seconds, "error": progress.error}
        for progress in list(downloads.store.downloader.progress.values())
    ]  # fmt: skip
