"""The job pipeline: every event that moves a job, from pop to its last submit.

Work moves only on events: a job popped, its inputs fetched, a child's message arriving (the pipe is
registered with the event loop), a submit finishing. Each handler updates the job's record through
the registry and starts what comes next. A freed slot gets its next job before anything else is done
with the job that just left it, so the hand-off gap is one message round-trip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.model_sizes import ModelSizes
from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord, JobState
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs, Stage
from horde_worker_regen.models.loras import LoraFetcher, refs_of
from horde_worker_regen.pipeline.fault_guard import FaultGuard
from horde_worker_regen.pipeline.inputs import InputFetcher, spec_for_inputs
from horde_worker_regen.pipeline.recycling import RecyclePolicy
from horde_worker_regen.pipeline.reporting import image_reports, report_job
from horde_worker_regen.pipeline.safety_link import SafetyLink
from horde_worker_regen.pipeline.slots import Slot, SlotPool
from horde_worker_regen.pipeline.spool import ResultSpool, entries_for
from horde_worker_regen.pipeline.stage_watch import StageLimits
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.pipeline.submitter import ImageReport, Submitter
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildFailed,
    ChildMessage,
    JobDone,
    JobFailed,
    JobProgress,
    JobStage,
    ModelPreloaded,
    RunJob,
    SafetyChecked,
)
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec
from horde_worker_regen.safety.policy import censor_policy
from horde_worker_regen.scheduling.breaker import (
    FEATURE_FLAGS,
    FEATURE_KINDS,
    BreakerSettings,
    Cause,
    FaultBreaker,
    Withdrawal,
)
from horde_worker_regen.scheduling.policy import QueuedJob, StartDecision, next_job, start_decision
from horde_worker_regen.scheduling.residency import offer_order


@dataclass(frozen=True)
class ChildSpecs:
    """The children the pipeline runs: one safety child and one inference child per slot."""

    safety: ChildSpec
    inference: list[ChildSpec]


async def _no_extras(spec: GenerationSpec) -> tuple[GenerationSpec, list[dict[str, Any]]]:
    return spec, []


@dataclass(frozen=True)
class RecentFault:
    """A job that faulted or was dropped, kept for the dashboard (`at` is wall-clock time)."""

    at: float
    job_key: str
    images: int
    outcome: str
    reason: str


RECENT_FAULTS_KEPT = 50

_BEFORE_REPORTING = (JobState.POPPED, JobState.INPUTS_FETCHED, JobState.QUEUED, JobState.RUNNING, JobState.SAFETY)


class Pipeline:
    """Moves every job of the registry through inference, safety and reporting."""

    def __init__(
        self,
        *,
        data: BridgeData,
        supervisor: ChildClient,
        children: ChildSpecs,
        registry: JobRegistry,
        stats: WorkerStats,
        submitter: Submitter,
        fetcher: InputFetcher,
        on_fatal: Callable[[str], None],
        loras: LoraFetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        spool: ResultSpool | None = None,
        placer: DevicePlacer | None = None,
        events: EventLog | None = None,
    ) -> None:
        self._data = data
        self.events = events if events is not None else EventLog(clock)
        self._supervisor = supervisor
        supervisor.bind(self.on_child_message, self.on_child_lost)
        self.slots = SlotPool(supervisor, children.inference)
        self._safety = SafetyLink(supervisor, children.safety, self.safety_abandoned, on_fatal)
        self.registry = registry
        self._stats = stats
        self._submitter = submitter
        self._fetcher = fetcher
        self._loras = loras
        self._clock = clock
        self._spool = spool
        self._placer = placer if placer is not None else DevicePlacer([], ModelSizes({}, 0))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._restart_children = True
        self.recent_faults: deque[RecentFault] = deque(maxlen=RECENT_FAULTS_KEPT)
        # Told of every fault the pipeline recovers from by itself (exit_on_unhandled_faults).
        self.on_unhandled_fault: Callable[[str], None] = lambda reason: None
        self._on_fatal = on_fatal
        self._gpu_limits = StageLimits.from_bridge_data(data)
        self._cpu_limits = StageLimits.from_bridge_data(data, on_cpu=True)
        self._recycling = RecyclePolicy.from_bridge_data(data)
        settings = BreakerSettings.from_minutes(
            data.fault_breaker_cooldown, data.quarantine_model_after_strikes, data.max_batch
        )
        self.guard = FaultGuard(FaultBreaker(settings), registry, clock)
        self._losses: dict[str, int] = {}  # job key -> inference processes lost while running it

    async def start_children(self, on_started: Callable[[str], None] | None = None) -> None:
        """The safety child first (nothing may go out unchecked), then every inference slot.

        `on_started(name)` is called as each child comes up (start-up progress)."""
        await self.start_safety()
        if on_started is not None:
            on_started("safety")
        await self.slots.start_all(on_started)

    async def start_safety(self) -> None:
        """Start the safety child alone (the worker finds its GPUs meanwhile, then calls `use_inference`)."""
        await self._safety.start()

    def use_inference(self, children: list[ChildSpec], placer: DevicePlacer) -> None:
        """The inference slots and their placement, once the GPUs are known (before they are started)."""
        self.slots = SlotPool(self._supervisor, children)
        self._placer = placer

    # --- supervisor callbacks -------------------------------------------------------------------

    def on_child_message(self, handle: ChildHandle, message: ChildMessage) -> None:
        """Route a message from any child (called by the supervisor on the event loop)."""
        if isinstance(message, JobDone | JobFailed):
            self._on_inference_result(handle, message)
        elif isinstance(message, JobStage):
            logger.debug(f"Job {message.job_key}: {message.stage} on {handle.name}")
            self.events.emit("stage_started", message.job_key, stage=message.stage, child=handle.name)
            self._on_stage(handle, message.job_key, message.stage)
        elif isinstance(message, JobProgress):
            logger.trace(f"Job {message.job_key}: step {message.step}/{message.total_steps}")
            slot = self.slots.slot_of(handle)
            if slot is not None and slot.job_key == message.job_key:
                slot.step, slot.total_steps = message.step, message.total_steps
            # Each step re-arms the step limit.
            self._on_stage(handle, message.job_key, "sampling", last_step=message.step >= message.total_steps)
        elif isinstance(message, ModelPreloaded):
            self._on_preloaded(handle, message)
        elif isinstance(message, SafetyChecked):
            self._on_safety_checked(message)
        elif isinstance(message, ChildFailed):
            logger.error(f"{handle.name} reported a failure: {message.reason}")

    def on_child_lost(self, handle: ChildHandle, reason: str) -> None:
        """A child died or went silent: fault what it held and replace it."""
        self.on_unhandled_fault(f"{handle.name} was lost ({reason})")
        if self._safety.owns(handle):
            self._safety.lost(reason, restart=self._restart_children)
            return
        slot = self.slots.slot_of(handle)
        if slot is not None:
            self._child_gone(slot, handle, f"the inference process was lost ({reason})")

    def _child_gone(self, slot: Slot, handle: ChildHandle, reason: str) -> None:
        """A slot's child is dead or being killed: retry or fault the job it held, replace the child."""
        key = slot.release()
        record = self.registry.get(key) if key else None
        if self._restart_children:
            self.slots.replace(slot, self.dispatch, self._slot_gave_up)
        if record is not None and record.state is JobState.RUNNING:
            self._retry_or_fault(record, reason)

    def _slot_gave_up(self, reason: str) -> None:
        logger.error(reason)
        self.on_unhandled_fault(reason)
        if self.slots.all_out_of_service():
            self._on_fatal("every inference slot is out of service (their processes keep failing to start)")
        self.dispatch()  # with no slot left at all, this faults what is queued

    def safety_abandoned(self, job_key: str, reason: str) -> None:
        """The safety child could not check a job: fault it (images must not go out unchecked)."""
        record = self.registry.get(job_key)
        if record is not None and record.state is JobState.SAFETY:
            self.fault(record, reason, _transient(record))

    # --- intake ---------------------------------------------------------------------------------

    def job_popped(self, job: PoppedJob, popped_at: float) -> JobRecord:
        """Register a job just popped and start preparing it."""
        record = JobRecord.from_pop(job, popped_at)
        self.registry.add(record)
        self.events.emit("job_popped", record.key, ids=list(record.ids), model=job.spec.model,
                         images=len(record.ids), ttl=record.ttl)  # fmt: skip
        logger.debug(f"Job {record.key}: {len(record.ids)}x {job.spec.width}x{job.spec.height} on '{job.spec.model}'")
        if job.rejected is not None:
            record.gen_metadata = list(job.fault_metadata)
            self.fault(record, f"its pop answer is outside the API contract: {job.rejected}")
        elif not job.spec.model:
            self.fault(record, "the horde sent the job without a model")
        elif self._needs_fetching(job):
            self._track(record, self._fetch_inputs(record))
        else:
            self._enqueue(record)
        return record

    def _needs_fetching(self, job: PoppedJob) -> bool:
        """Input images or LoRAs/TIs to fetch before the job can be queued."""
        has_images = job.sources.source_image or job.sources.extra_source_images
        return bool(has_images or (self._loras is not None and refs_of(job.spec.payload)))

    async def _fetch_inputs(self, record: JobRecord) -> None:
        """Images and LoRAs/TIs at once; this runs while earlier jobs hold the slots."""
        extras = self._loras.fetch(record.spec) if self._loras is not None else _no_extras(record.spec)
        (inputs, metadata), (spec, extra_metadata) = await asyncio.gather(
            self._fetcher.fetch(record.sources, record.deadline), extras
        )
        record.inputs, record.gen_metadata = inputs, metadata + extra_metadata
        record.spec = spec_for_inputs(spec, inputs)
        self._enqueue(record)

    def _enqueue(self, record: JobRecord) -> None:
        self.registry.move(record, JobState.INPUTS_FETCHED)
        self.registry.move(record, JobState.QUEUED)
        self.events.emit("job_queued", record.key)
        self.dispatch()

    # --- inference ------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Give queued jobs to idle slots, earliest deadline first, each to a slot holding its model if any."""
        if self.slots.all_down():
            for stranded in self.registry.in_state(JobState.QUEUED):
                self.fault(stranded, "no inference process is available", _transient(stranded))
            return
        while self.slots.idle_indexes() and self._dispatch_one():
            pass

    def _dispatch_one(self) -> bool:
        """Start, fault or drop the first queued job (earliest deadline first) that can be settled now.

        A job whose model fits no device right now waits (later jobs may still start); one that can
        never run here is faulted. False when nothing could be done.
        """
        queued = self.registry.in_state(JobState.QUEUED)
        pending = [QueuedJob(r.key, r.deadline, r.popped_at) for r in queued]
        while (chosen := next_job(pending)) is not None:
            pending.remove(chosen)
            record = self.registry.get(chosen.key)
            if record is None or record.state is not JobState.QUEUED:
                continue  # settled meanwhile (a withdrawal faults the queued jobs needing its subject)
            if (blocking := self.guard.blocking(record.spec)) is not None:
                self._fault_withdrawn(record, blocking)
                continue
            decision = start_decision(self._clock(), record.deadline, self._stats.expected_job_seconds)
            if decision is StartDecision.DROP:
                self.drop(record, "its deadline passed before a slot was free", _transient(record))
                return True
            if decision is StartDecision.FAULT:
                self.fault(record, "it could no longer finish before its deadline", _transient(record))
                return True
            others = [r.spec.model for r in queued if r is not record]
            placement = self._placer.place(
                record.spec.model, record.spec.width * record.spec.height, self.slots.slots, others
            )
            if placement.never is not None:
                self.fault(record, f"it can never run on this worker: {placement.never}", _transient(record))
                return True
            if placement.slot is not None:
                # False when that slot's child just died: the job waits for the loss to be handled.
                return self._run_on(self.slots.slots[placement.slot], record)
        return False

    def _run_on(self, slot: Slot, record: JobRecord) -> bool:
        handle = slot.handle
        assert handle is not None
        if not self._supervisor.send(handle, RunJob(handle.incarnation, record.spec, record.inputs)):
            return False  # the child is gone; its loss is being handled and the job stays queued
        slot.job_key, slot.model = record.key, record.spec.model
        record.slot, record.slot_incarnation = slot.index, handle.incarnation
        self.registry.move(record, JobState.RUNNING)
        self.events.emit("job_started", record.key, slot=slot.index, child=handle.name, attempt=record.spec.attempt)
        self.events.emit("stage_started", record.key, stage="loading_model", child=handle.name)
        device = self._placer.device_of(slot.index)
        where = f" (GPU {device})" if device is not None else ""
        logger.debug(f"Job {record.key} started on slot {slot.index}{where}")
        delay = max(0.0, record.deadline - self._clock())
        slot.watchdog = asyncio.get_running_loop().call_later(delay, self._overdue, slot, record.key)
        self._on_stage(handle, record.key, "loading_model")  # the child's first stage, until it says otherwise
        return True

    def _overdue(self, slot: Slot, key: str) -> None:
        """Watchdog: a job still running at its deadline; the child is stuck or far too slow."""
        if slot.job_key != key or slot.handle is None:
            return
        handle = slot.handle
        slot.release()
        record = self.registry.get(key)
        if record is not None:
            self.drop(record, "it was still running at its deadline; its process is replaced", _transient(record))
        self._supervisor.kill(handle)
        if self._restart_children:
            self.slots.replace(slot, self.dispatch, self._slot_gave_up)

    # --- stage watchdog, retries, quarantine, recycling -----------------------------------------

    def _on_stage(self, handle: ChildHandle, key: str, stage: Stage, *, last_step: bool = False) -> None:
        """Arm the limit of the stage a running job is in (a timer: it fires even if the child goes quiet).

        After the last step of a sampling pass comes work with no step reports (VAE decoding, the
        upscale before a hires_fix second pass): that gap gets the post-processing limit if longer.
        """
        slot = self.slots.slot_of(handle)
        record = self.registry.get(key)
        if slot is None or slot.job_key != key or record is None:
            return
        limits = self._limits(slot)
        limit = limits.limit(stage, record.spec)
        what = {"loading_model": "loading its model", "sampling": "on one sampling step"}.get(stage, stage)
        if last_step:
            limit = max(limit, limits.limit("post_processing", record.spec))
            what = "after its last sampling step (decoding)"
        slot.arm_stage_timer(limit, lambda: self._stage_overdue(slot, handle, key, what, limit))

    def _limits(self, slot: Slot) -> StageLimits:
        """The watchdog limits of a slot: its device's (a slot with no GPU runs far slower steps)."""
        return self._cpu_limits if self._placer.device_of(slot.index) is None else self._gpu_limits

    def _stage_overdue(self, slot: Slot, handle: ChildHandle, key: str, what: str, limit: float) -> None:
        if slot.handle is not handle or slot.job_key != key:
            return
        reason = f"{handle.name} spent more than {limit:.0f}s {what} and was killed"
        logger.warning(f"Job {key}: {reason}")
        self.events.emit("child_killed", key, child=handle.name, reason=reason)
        self.on_unhandled_fault(reason)
        self._supervisor.kill(handle)
        self._child_gone(slot, handle, reason)

    def _retry_or_fault(self, record: JobRecord, reason: str) -> None:
        """Retry a job whose process was lost on a fresh one, if retries and its deadline allow; else fault it."""
        losses = self._losses[record.key] = self._losses.get(record.key, 0) + 1
        retries = self._data.job_retries
        if losses <= retries:
            decision = start_decision(self._clock(), record.deadline, self._stats.expected_job_seconds)
            if decision is StartDecision.RUN:
                logger.warning(
                    f"Job {record.key}: {reason}; retrying it on a fresh process (retry {losses} of {retries})"
                )
                record.spec = dataclasses.replace(record.spec, attempt=losses)
                self.events.emit("job_retried", record.key, attempt=losses, reason=reason)
                self.registry.move(record, JobState.QUEUED)
                self.dispatch()
                return
            reason += "; too little time is left before its deadline to retry it"
            self.fault(record, reason, _transient(record))
            return
        # Lost on every process it ran on (with job_retries 0, its only one): a strike against its model.
        reason += f"; it was lost with every process it ran on ({losses})"
        self.fault(record, reason, Cause.of("crashing_model", record.spec.model))

    def _fault_withdrawn(self, record: JobRecord, withdrawal: Withdrawal) -> None:
        """A held job needing a subject withdrawn for good reason: it would fail the same way, so it is not run.

        Faulting it now hands it back to the horde at once (another worker takes it) instead of at its ttl.
        """
        subject = withdrawal.cause.subject
        self.fault(record, f"its {subject.describe()} is withdrawn ({withdrawal.reason})", withdrawal.cause)

    def _withdrawn(self, withdrawal: Withdrawal) -> None:
        """A subject was just withdrawn: settle the queued jobs that need it (the running ones end by themselves)."""
        if withdrawal.by_cap:
            return  # a cap is no verdict on the held jobs: they may well succeed
        for record in self.registry.in_state(JobState.QUEUED):
            if self.guard.blocking(record.spec) is withdrawal:
                self._fault_withdrawn(record, withdrawal)

    def offer(self, models: list[str]) -> list[str]:
        """The models to offer the horde: none the fault breaker holds back, those that start soonest first."""
        return offer_order(self.guard.gate(models).models, self.slots.views())

    def pop_flags_off(self) -> frozenset[str]:
        """The pop flags (`allow_*`) to turn off: the features the fault breaker refuses now."""
        return self.guard.flags_off()

    def reopens_in(self) -> float | None:
        """Seconds until the fault breaker may offer more by itself (a cool-down ends, a fault ages out)."""
        return self.guard.reopens_in()

    def _recycle_if_due(self, slot: Slot) -> bool:
        """Recycle a slot between jobs when its child has run enough jobs or grown too big."""
        handle = slot.handle
        if handle is None or not self._restart_children:
            return False
        reason = self._recycling.reason(slot.jobs_run, handle.process.pid)
        if reason is None:
            return False
        self.events.emit("child_recycled", child=handle.name, reason=reason)
        self.slots.recycle(slot, reason, lambda: self._recycled(slot), self._slot_gave_up)
        return True

    def _recycled(self, slot: Slot) -> None:
        """A recycled slot's new child is up: time its preload like any model load."""
        handle = slot.handle
        if handle is not None and slot.preloading:
            slot.arm_stage_timer(self._limits(slot).load, lambda: self._preload_overdue(slot, handle))
        self.dispatch()

    def _preload_overdue(self, slot: Slot, handle: ChildHandle) -> None:
        if slot.handle is not handle or not slot.preloading:
            return
        limit = self._limits(slot).load
        logger.warning(f"{handle.name} did not preload {slot.model} within {limit:.0f}s; replacing it")
        self.events.emit("child_killed", child=handle.name, reason="its preload took too long")
        self._supervisor.kill(handle)
        self._child_gone(slot, handle, "its preload took too long")

    def _on_preloaded(self, handle: ChildHandle, message: ModelPreloaded) -> None:
        slot = self.slots.slot_of(handle)
        if slot is None or not slot.preloading:
            return
        slot.preloading = False
        slot.release()  # holds no job: this only cancels the preload's timer
        if message.reason:
            slot.model = None
        else:
            logger.debug(f"Slot {slot.index}: {message.model} preloaded by {handle.name}")
        self.dispatch()

    def _on_inference_result(self, handle: ChildHandle, message: JobDone | JobFailed) -> None:
        slot = self.slots.slot_of(handle)
        if slot is None or slot.job_key != message.job_key:
            logger.debug(f"Ignored a result for job {message.job_key} that {handle.name} no longer holds")
            return
        slot.release()
        self.events.emit("inference_finished", message.job_key, slot=slot.index, ok=isinstance(message, JobDone),
                         started_at=message.started_at, finished_at=message.finished_at)  # fmt: skip
        if isinstance(message, JobFailed):
            slot.model = None  # the model may not have loaded; do not count on it being resident
        else:
            slot.jobs_run += 1
        self._recycle_if_due(slot)
        self.dispatch()  # hand the slot its next job first: the GPU must not wait on bookkeeping
        record = self.registry.get(message.job_key)
        if record is None or record.state is not JobState.RUNNING:
            return
        record.started_at, record.finished_at = message.started_at, message.finished_at
        if isinstance(message, JobFailed):
            self.fault(record, message.reason, _failure_cause(record, message))
            return
        self.guard.succeeded(record.spec)
        record.images = message.images
        record.gen_metadata = record.gen_metadata + list(message.gen_metadata)
        self.registry.move(record, JobState.SAFETY)
        self._safety.check(self._check_request(record))

    # --- safety ---------------------------------------------------------------------------------

    def _check_request(self, record: JobRecord) -> CheckImages:
        spec = record.spec
        policy = censor_policy(
            worker_nsfw=self._data.nsfw,
            use_nsfw_censor=record.use_nsfw_censor,
            prompt=spec.prompt,
            censorlist=self._data.censorlist,
        )
        return CheckImages(0, record.key, spec.prompt, spec.width, spec.height, record.images, policy)

    def _on_safety_checked(self, message: SafetyChecked) -> None:
        if not self._safety.answered(message.job_key):
            return
        record = self.registry.get(message.job_key)
        if record is None or record.state is not JobState.SAFETY:
            return
        if len(message.verdicts) != len(record.images):
            self.fault(
                record, f"{len(message.verdicts)} safety verdicts for {len(record.images)} images", _transient(record)
            )
            return
        record.verdicts = message.verdicts
        censored = sum(1 for verdict in message.verdicts if verdict.censorship)
        self.events.emit("job_checked", record.key, censored=censored)
        self._start_reporting(record)

    # --- reporting ------------------------------------------------------------------------------

    def fault(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """Report every id of the job as faulted (once), so the horde re-queues them now.

        A fault with a `cause` counts toward the fault breaker; one without is none of this worker's
        doing and nothing here could avoid it (a payload outside the contract, a stop).
        """
        logger.warning(f"Job {record.key} ({len(record.ids)} image(s)) faulted: {reason}")
        self.events.emit("job_faulted", record.key, reason=reason, cause=_described(cause))
        self._count(record, cause, reason)
        self.recent_faults.append(RecentFault(time.time(), record.key, len(record.ids), "faulted", reason))
        record.fault_reason = reason
        self._safety.forget(record.key)
        self._cancel_task(record.key)
        self._start_reporting(record)

    def drop(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """End a job without reporting it (the horde aborts it by itself, which it counts as a fault)."""
        logger.warning(f"Job {record.key} ({len(record.ids)} image(s)) dropped: {reason}")
        self.events.emit("job_dropped", record.key, reason=reason, cause=_described(cause))
        self._count(record, cause, reason)
        self.recent_faults.append(RecentFault(time.time(), record.key, len(record.ids), "dropped", reason))
        self._safety.forget(record.key)
        self._cancel_task(record.key)
        record.results = {index: IdResult(IdOutcome.DROPPED, 0.0, reason) for index in range(len(record.ids))}
        self._finish(record, JobState.DROPPED)

    def _count(self, record: JobRecord, cause: Cause | None, reason: str) -> None:
        if cause is not None and (withdrawal := self.guard.count(record, cause, reason)) is not None:
            subject = withdrawal.cause.subject.describe()
            self.events.emit("subject_withdrawn", record.key, subject=subject, reason=withdrawal.reason)
            self._withdrawn(withdrawal)

    def _start_reporting(self, record: JobRecord, reports: list[ImageReport] | None = None) -> None:
        self.registry.move(record, JobState.UPLOADING)
        self._track(record, self._report(record, reports))

    def resume(self, record: JobRecord, reports: list[ImageReport]) -> None:
        """Report a result an earlier run spooled: registered like any job, in its reporting stage."""
        self.registry.add(record)
        self._start_reporting(record, reports)

    async def _report(self, record: JobRecord, reports: list[ImageReport] | None) -> None:
        if reports is None and record.fault_reason is None and record.images:
            reports = image_reports(record)  # the bytes that go out, censor images included
            if self._spool is not None:
                spool = self._spool
                await asyncio.to_thread(spool.write, entries_for(record, reports, spool.wall_deadline(record)))
        record.results = await report_job(self._submitter, record, reports)
        if self._spool is not None and reports is not None:
            await asyncio.to_thread(self._spool.remove, [record.ids[report.index] for report in reports])
        for index, result in record.results.items():
            if result.reason.startswith("reporting failed"):
                logger.error(f"Job {record.ids[index]}: {result.reason}")
        self._finish(record, record.final_state())

    def _finish(self, record: JobRecord, state: JobState) -> None:
        self._losses.pop(record.key, None)
        record.images, record.verdicts, record.inputs = (), (), JobInputs()
        self.registry.move(record, state)
        self._stats.job_ended(record)
        self.events.emit("job_ended", record.key, state=state.value, images=len(record.ids), reward=record.reward,
                         slot=record.slot, popped_at=record.popped_at, started_at=record.started_at,
                         finished_at=record.finished_at)  # fmt: skip
        if state is JobState.SUBMITTED:
            logger.info(f"Job {record.key} submitted: {len(record.ids)} image(s), {record.reward:.2f} kudos")

    # --- tasks and shutdown ---------------------------------------------------------------------

    def _track(self, record: JobRecord, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks[record.key] = task
        key = record.key
        task.add_done_callback(lambda done: self._task_done(key, done))

    def _task_done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.opt(exception=error).error(f"Job {key}: unexpected error in the pipeline")
            self.on_unhandled_fault(f"job {key} hit an unexpected error ({error!r})")
            record = self.registry.get(key)
            if record is not None and not record.state.is_terminal:
                self.drop(record, f"unexpected error: {error!r}", _transient(record))

    def _cancel_task(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def abort(self, grace: float) -> None:
        """Second signal: stop the children, fault every job not yet reporting, give reports `grace` s."""
        self._restart_children = False
        self.slots.cancel_replacements()
        self._safety.cancel_restart()
        for slot in self.slots.slots:
            slot.release()
        await self._supervisor.kill_all()
        for record in self.registry:
            if record.state in _BEFORE_REPORTING:
                self.fault(record, "the worker was stopped before it finished")
        pending = list(self._tasks.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for record in self.registry:
            self.drop(record, "the worker stopped before it could be reported")

    def stop_restarting(self) -> None:
        """No more child replacements (graceful shutdown has drained the jobs)."""
        self._restart_children = False
        self.slots.cancel_replacements()
        self._safety.cancel_restart()


def _transient(record: JobRecord) -> Cause:
    """This job's own fault, counted against its model by the rolling cap."""
    return Cause.of("transient", record.spec.model)


def _failure_cause(record: JobRecord, message: JobFailed) -> Cause:
    """The cause an inference child gave; a feature it does not know, or no model named, reads as this job's."""
    if message.kind in FEATURE_KINDS:
        return Cause.of(message.kind, message.subject) if message.subject in FEATURE_FLAGS else _transient(record)
    return Cause.of(message.kind, message.subject or record.spec.model)


def _described(cause: Cause | None) -> str | None:
    """A fault's cause for the event log: `kind: subject`, or None when it is none of this worker's doing."""
    return None if cause is None else f"{cause.kind}: {cause.subject.describe()}"
