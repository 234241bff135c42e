"""The inference stage: a job on a slot's child, its result, and everything that can happen to that child.

A job is sent to an idle slot (`run_on`) and timed by the watchdogs. Its result frees the slot, which
gets its next job before anything else is done with the finished one (the hand-off rule), then the
job goes on to the safety stage or is faulted. A child that is lost, or killed by a watchdog, is
replaced in the background and the job it held is retried on a fresh one when `job_retries` and its
deadline allow (`scheduling.retries`). Between jobs a child that has run enough jobs or grown too big
is recycled, and its fresh successor preloads the model it held.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.devices.model_sizes import ModelSizes
from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.spec import GenerationFailed
from horde_worker_regen.pipeline.reporter import Reporter
from horde_worker_regen.pipeline.safety_stage import SafetyStage
from horde_worker_regen.pipeline.settings import InferenceSettings, PipelineContext
from horde_worker_regen.pipeline.slot import Slot
from horde_worker_regen.pipeline.slots import SlotPool
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.pipeline.watchdogs import WatchdogHooks, Watchdogs
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.messages import JobDone, JobFailed, JobProgress, JobStage, ModelPreloaded, RunJob
from horde_worker_regen.scheduling.retries import LossAction, after_loss, crash_cause, failure_cause, transient_cause


@dataclass(frozen=True)
class InferenceHooks:
    """What the inference stage asks of the rest of the pipeline."""

    dispatch: Callable[[], None]  # hand queued jobs to idle slots
    unhandled_fault: Callable[[str], None]  # a fault recovered from (exit_on_unhandled_faults)
    fatal: Callable[[str], None]  # the worker cannot go on


class InferenceStage:
    """The inference slots, their children, and the jobs they run."""

    def __init__(
        self,
        context: PipelineContext,
        settings: InferenceSettings,
        supervisor: ChildClient,
        *,
        safety: SafetyStage,
        reporter: Reporter,
        hooks: InferenceHooks,
    ) -> None:
        self._context = context
        self._settings = settings
        self._supervisor = supervisor
        self._safety = safety
        self._reporter = reporter
        self._hooks = hooks
        self.slots = SlotPool(supervisor, [])
        self.placer = DevicePlacer([], ModelSizes({}, 0))
        self._watchdogs = Watchdogs(
            context, WatchdogHooks(self._limits, self._kill, self._overdue, hooks.unhandled_fault)
        )

    def use(self, children: list[ChildSpec], placer: DevicePlacer | None) -> None:
        """The inference slots and their placement (None: none yet), once the GPUs are known (before they start)."""
        self.slots = SlotPool(self._supervisor, children)
        if placer is not None:
            self.placer = placer

    def _limits(self, slot: Slot) -> StageLimits:
        """The watchdog limits of a slot: its device's (a slot with no GPU runs far slower steps)."""
        on_gpu = self.placer.device_of(slot.index) is not None
        return self._settings.gpu_limits if on_gpu else self._settings.cpu_limits

    def run_on(self, slot: Slot, record: JobRecord) -> bool:
        """Send a queued job to an idle slot's child; False if the child is gone (the job stays queued)."""
        handle = slot.handle
        assert handle is not None
        if not self._supervisor.send(handle, RunJob(handle.incarnation, record.spec, record.inputs)):
            return False  # the child is gone; its loss is being handled and the job stays queued
        slot.take(record.key, record.spec.model)
        record.slot, record.slot_incarnation = slot.index, handle.incarnation
        self._context.registry.move(record, JobState.RUNNING)
        events = self._context.events
        events.emit("job_started", record.key, slot=slot.index, child=handle.name, attempt=record.spec.attempt)
        events.emit("stage_started", record.key, stage="loading_model", child=handle.name)
        device = self.placer.device_of(slot.index)
        where = f" (GPU {device})" if device is not None else ""
        logger.debug(f"Job {record.key} started on slot {slot.index}{where}")
        self._watchdogs.job_started(slot, handle, record)
        return True

    # --- what the children say ------------------------------------------------------------------

    def on_stage(self, handle: ChildHandle, message: JobStage) -> None:
        """A running job entered a stage: arm that stage's limit."""
        self._stage(handle, message.job_key, message)

    def on_progress(self, handle: ChildHandle, message: JobProgress) -> None:
        """A sampling step: shown on the dashboard; each one re-arms the step limit."""
        slot = self.slots.slot_of(handle)
        if slot is not None and slot.job_key == message.job_key:
            slot.step, slot.total_steps = message.step, message.total_steps
        self._stage(handle, message.job_key, message)

    def _stage(self, handle: ChildHandle, key: str, message: JobStage | JobProgress) -> None:
        slot = self.slots.slot_of(handle)
        record = self._context.registry.get(key)
        if slot is None or slot.job_key != key or record is None:
            return
        if isinstance(message, JobStage):
            self._watchdogs.stage(slot, handle, record, message.stage)
        else:
            last_step = message.step >= message.total_steps
            self._watchdogs.stage(slot, handle, record, "sampling", last_step=last_step)

    def on_result(self, handle: ChildHandle, message: JobDone | JobFailed) -> None:
        """A job's result: its slot takes the next job first, then the job goes to safety (or is faulted)."""
        slot = self.slots.slot_of(handle)
        if slot is None or slot.job_key != message.job_key:
            logger.debug(f"Ignored a result for job {message.job_key} that {handle.name} no longer holds")
            return
        slot.release()
        outcome = message.result if isinstance(message, JobDone) else message.failure
        self._context.events.emit("inference_finished", message.job_key, slot=slot.index,
                                  ok=isinstance(message, JobDone), started_at=outcome.started_at,
                                  finished_at=outcome.finished_at)  # fmt: skip
        if isinstance(message, JobFailed):
            slot.model = None  # the model may not have loaded; do not count on it being resident
        else:
            slot.jobs_run += 1
        self._recycle_if_due(slot)
        self._hooks.dispatch()  # hand the slot its next job first: the GPU must not wait on bookkeeping
        record = self._context.registry.get(message.job_key)
        if record is None or record.state is not JobState.RUNNING:
            return
        record.started_at, record.finished_at = outcome.started_at, outcome.finished_at
        if isinstance(outcome, GenerationFailed):
            cause = failure_cause(outcome.kind, outcome.subject, record.spec.model)
            self._reporter.fault(record, outcome.reason, cause)
            return
        self._context.guard.succeeded(record.spec)
        record.images = outcome.images
        record.gen_metadata = record.gen_metadata + list(outcome.gen_metadata)
        self._safety.check(record)

    def on_preloaded(self, handle: ChildHandle, message: ModelPreloaded) -> None:
        """A recycled slot's fresh child has loaded its model (or failed to): it takes jobs again."""
        slot = self.slots.slot_of(handle)
        if slot is None or not slot.preloading:
            return
        slot.preloaded(failed=bool(message.reason))
        if not message.reason:
            logger.debug(f"Slot {slot.index}: {message.model} preloaded by {handle.name}")
        self._hooks.dispatch()

    def on_lost(self, handle: ChildHandle, reason: str) -> None:
        """A slot's child died or went silent: retry or fault the job it held, replace it."""
        slot = self.slots.slot_of(handle)
        if slot is not None:
            self._child_gone(slot, f"the inference process was lost ({reason})")

    # --- losses, retries, recycling -------------------------------------------------------------

    def kill_child(self, slot: Slot, reason: str) -> None:
        """Kill a slot's child that is stuck on what it holds (an alchemy form past its time) and replace it."""
        if slot.handle is not None:
            self._context.events.emit("child_killed", child=slot.handle.name, reason=reason)
            self._kill(slot, slot.handle, reason)

    def _kill(self, slot: Slot, handle: ChildHandle, reason: str) -> None:
        """A watchdog caught a stuck child: kill it, replace it, retry or fault its job."""
        self._supervisor.kill(handle)
        self._child_gone(slot, reason)

    def _overdue(self, slot: Slot, handle: ChildHandle, key: str) -> None:
        """A job still running at its deadline: the child is stuck or far too slow; drop the job, replace it."""
        self.slots.child_gone(slot, self._hooks.dispatch, self._slot_gave_up)
        record = self._context.registry.get(key)
        if record is not None:
            reason = "it was still running at its deadline; its process is replaced"
            self._reporter.drop(record, reason, transient_cause(record.spec.model))
        self._supervisor.kill(handle)

    def _child_gone(self, slot: Slot, reason: str) -> None:
        """A slot's child is dead or being killed: replace it, retry or fault the job it held."""
        key = self.slots.child_gone(slot, self._hooks.dispatch, self._slot_gave_up)
        record = self._context.registry.get(key) if key else None
        if record is not None and record.state is JobState.RUNNING:
            self._retry_or_fault(record, reason)

    def _retry_or_fault(self, record: JobRecord, reason: str) -> None:
        """Retry a job whose process was lost on a fresh one, if retries and its deadline allow; else fault it."""
        losses = record.spec.attempt + 1  # each retry runs as the next attempt
        retries = self._settings.job_retries
        now, expected = self._context.clock(), self._context.stats.expected_job_seconds
        action = after_loss(losses, retries, now, record.deadline, expected)
        if action is LossAction.RETRY:
            logger.warning(f"Job {record.key}: {reason}; retrying it on a fresh process (retry {losses} of {retries})")
            record.spec = dataclasses.replace(record.spec, attempt=losses)
            self._context.events.emit("job_retried", record.key, attempt=losses, reason=reason)
            self._context.registry.move(record, JobState.QUEUED)
            self._hooks.dispatch()
        elif action is LossAction.FAULT_NO_TIME:
            reason += "; too little time is left before its deadline to retry it"
            self._reporter.fault(record, reason, transient_cause(record.spec.model))
        else:  # lost on every process it ran on (with job_retries 0, its only one): a strike against its model
            reason += f"; it was lost with every process it ran on ({losses})"
            self._reporter.fault(record, reason, crash_cause(record.spec.model))

    def _slot_gave_up(self, reason: str) -> None:
        logger.error(reason)
        self._hooks.unhandled_fault(reason)
        if self.slots.all_out_of_service():
            self._hooks.fatal("every inference slot is out of service (their processes keep failing to start)")
        self._hooks.dispatch()  # with no slot left at all, this faults what is queued

    def _recycle_if_due(self, slot: Slot) -> None:
        """Recycle a slot between jobs when its child has run enough jobs or grown too big."""
        handle = slot.handle
        if handle is None or not self.slots.restarting:
            return
        reason = self._settings.recycling.reason(slot.jobs_run, handle.process.pid)
        if reason is None:
            return
        self._context.events.emit("child_recycled", child=handle.name, reason=reason)
        self.slots.recycle(slot, reason, lambda: self._recycled(slot), self._slot_gave_up)

    def _recycled(self, slot: Slot) -> None:
        """A recycled slot's new child is up: time its preload like any model load."""
        self._watchdogs.preloading(slot)
        self._hooks.dispatch()
