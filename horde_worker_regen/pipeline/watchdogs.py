"""The inference watchdogs: a timer per running job for its deadline and for its current stage.

The child reports each stage it enters and each sampling step; each re-arms the stage timer with
that stage's limit (`StageLimits`), so a child that wedges mid-step is caught when the timer fires
even if nothing else ever arrives from it. A job still running at its deadline is overdue. A
recycled child's preload is timed like any model load. What to do about a stuck child or an overdue
job is the caller's (`on_stuck`, `on_overdue`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.jobs.record import JobRecord
from horde_worker_regen.jobs.spec import Stage
from horde_worker_regen.pipeline.settings import PipelineContext
from horde_worker_regen.pipeline.slot import Slot
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.processes.handle import ChildHandle

_DOING = {"loading_model": "loading its model", "sampling": "on one sampling step"}


@dataclass(frozen=True)
class WatchdogHooks:
    """Where the watchdogs report."""

    limits: Callable[[Slot], StageLimits]  # the limits of a slot's device
    on_stuck: Callable[[Slot, ChildHandle, str], None]  # kill the child and replace it (the reason)
    on_overdue: Callable[[Slot, ChildHandle, str], None]  # the job (its key) is still running at its deadline
    unhandled_fault: Callable[[str], None]


class Watchdogs:
    """Arms and fires the timers of the inference slots."""

    def __init__(self, context: PipelineContext, hooks: WatchdogHooks) -> None:
        self._context = context
        self._hooks = hooks

    def job_started(self, slot: Slot, handle: ChildHandle, record: JobRecord) -> None:
        """Time a job just sent to a slot: its deadline, and its first stage (loading the model)."""
        delay = max(0.0, record.deadline - self._context.clock())
        slot.watchdog = asyncio.get_running_loop().call_later(delay, self._deadline_passed, slot, record.key)
        self.stage(slot, handle, record, "loading_model")  # the child's first stage, until it says otherwise

    def _deadline_passed(self, slot: Slot, key: str) -> None:
        handle = slot.handle
        if slot.job_key == key and handle is not None:
            self._hooks.on_overdue(slot, handle, key)

    def stage(
        self, slot: Slot, handle: ChildHandle, record: JobRecord, stage: Stage, *, last_step: bool = False
    ) -> None:
        """Arm the limit of the stage a running job is in (a timer: it fires even if the child goes quiet).

        After the last step of a sampling pass comes work with no step reports (VAE decoding, the
        upscale before a hires_fix second pass): that gap gets the post-processing limit if longer.
        """
        limits = self._hooks.limits(slot)
        limit = limits.limit(stage, record.spec)
        what = _DOING.get(stage, stage)
        if last_step:
            limit = max(limit, limits.limit("post_processing", record.spec))
            what = "after its last sampling step (decoding)"
        key = record.key
        slot.arm_stage_timer(limit, lambda: self._stage_overdue(slot, handle, key, what, limit))

    def _stage_overdue(self, slot: Slot, handle: ChildHandle, key: str, what: str, limit: float) -> None:
        if slot.handle is not handle or slot.job_key != key:
            return
        reason = f"{handle.name} spent more than {limit:.0f}s {what} and was killed"
        logger.warning(f"Job {key}: {reason}")
        self._context.events.emit("child_killed", key, child=handle.name, reason=reason)
        self._hooks.unhandled_fault(reason)
        self._hooks.on_stuck(slot, handle, reason)

    def preloading(self, slot: Slot) -> None:
        """Time a recycled slot's preload like any model load."""
        handle = slot.handle
        if handle is not None and slot.preloading:
            slot.arm_stage_timer(self._hooks.limits(slot).load, lambda: self._preload_overdue(slot, handle))

    def _preload_overdue(self, slot: Slot, handle: ChildHandle) -> None:
        if slot.handle is not handle or not slot.preloading:
            return
        limit = self._hooks.limits(slot).load
        logger.warning(f"{handle.name} did not preload {slot.model} within {limit:.0f}s; replacing it")
        self._context.events.emit("child_killed", child=handle.name, reason="its preload took too long")
        self._hooks.on_stuck(slot, handle, "its preload took too long")
