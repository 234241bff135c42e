"""The router: takes each popped job in and decides where it goes.

Intake: a job outside the API contract (or without a model) is faulted at once; one with input
images or LoRAs/TIs has them fetched first (while earlier jobs hold the slots); then it is queued.
Dispatch: whenever a slot may be free, queued jobs go out earliest deadline first, each to a slot
holding its model if any (`DevicePlacer`); a job that can no longer finish in time is faulted (or
dropped past its deadline), one needing a withdrawn model or feature is faulted without running, and
one that fits no device right now waits while later ones may start.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.models.loras import LoraFetcher, refs_of
from horde_worker_regen.pipeline.inference import InferenceStage
from horde_worker_regen.pipeline.inputs import InputFetcher, spec_for_inputs
from horde_worker_regen.pipeline.reporter import Reporter
from horde_worker_regen.pipeline.settings import PipelineContext
from horde_worker_regen.scheduling.breaker import Withdrawal
from horde_worker_regen.scheduling.policy import QueuedJob, StartDecision, next_job, start_decision
from horde_worker_regen.scheduling.retries import transient_cause


async def _no_extras(spec: GenerationSpec) -> tuple[GenerationSpec, list[dict[str, Any]]]:
    return spec, []


class Router:
    """Registers popped jobs, prepares them, and hands them to the inference slots."""

    def __init__(
        self,
        context: PipelineContext,
        inference: InferenceStage,
        reporter: Reporter,
        *,
        fetcher: InputFetcher,
        loras: LoraFetcher | None,
    ) -> None:
        self._context = context
        self._inference = inference
        self._reporter = reporter
        self._fetcher = fetcher
        self._loras = loras  # None: a job's LoRAs and TIs are not fetched

    # --- intake ---------------------------------------------------------------------------------

    def job_popped(self, job: PoppedJob, popped_at: float) -> JobRecord:
        """Register a job just popped and start preparing it."""
        record = JobRecord.from_pop(job, popped_at)
        self._context.registry.add(record)
        self._context.events.emit("job_popped", record.key, ids=list(record.ids), model=job.spec.model,
                                  images=len(record.ids), ttl=record.ttl)  # fmt: skip
        logger.debug(f"Job {record.key}: {len(record.ids)}x {job.spec.width}x{job.spec.height} on '{job.spec.model}'")
        if job.rejected is not None:
            record.gen_metadata = list(job.fault_metadata)
            self._reporter.fault(record, f"its pop answer is outside the API contract: {job.rejected}")
        elif not job.spec.model:
            self._reporter.fault(record, "the horde sent the job without a model")
        elif self._needs_fetching(job):
            self._reporter.track(record, self._fetch_inputs(record))
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
        self._context.registry.move(record, JobState.INPUTS_FETCHED)
        self._context.registry.move(record, JobState.QUEUED)
        self._context.events.emit("job_queued", record.key)
        self.dispatch()

    # --- dispatch -------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Give queued jobs to idle slots, earliest deadline first, each to a slot holding its model if any."""
        slots = self._inference.slots
        if slots.all_down():
            for stranded in self._context.registry.in_state(JobState.QUEUED):
                self._reporter.fault(
                    stranded, "no inference process is available", transient_cause(stranded.spec.model)
                )
            return
        while slots.idle_indexes() and self._dispatch_one():
            pass

    def _dispatch_one(self) -> bool:
        """Start, fault or drop the first queued job (earliest deadline first) that can be settled now.

        A job whose model fits no device right now waits (later jobs may still start); one that can
        never run here is faulted. False when nothing could be done.
        """
        registry = self._context.registry
        queued = registry.in_state(JobState.QUEUED)
        pending = [QueuedJob(r.key, r.deadline, r.popped_at) for r in queued]
        while (chosen := next_job(pending)) is not None:
            pending.remove(chosen)
            record = registry.get(chosen.key)
            if record is None or record.state is not JobState.QUEUED:
                continue  # settled meanwhile (a withdrawal faults the queued jobs needing its subject)
            if (blocking := self._context.guard.blocking(record.spec)) is not None:
                self._fault_withdrawn(record, blocking)
                continue
            if self._settled_by_deadline(record):
                return True
            others = [r.spec.model for r in queued if r is not record]
            slots = self._inference.slots.slots
            placement = self._inference.placer.place(
                record.spec.model,
                record.spec.width * record.spec.height,
                slots,
                others,
                post_processing=record.spec.post_processing,
                running=self._running_post_processing(),
            )
            if placement.never is not None:
                reason = f"it can never run on this worker: {placement.never}"
                self._reporter.fault(record, reason, transient_cause(record.spec.model))
                return True
            if placement.slot is not None:
                # False when that slot's child just died: the job waits for the loss to be handled.
                return self._inference.run_on(slots[placement.slot], record)
        return False

    def _running_post_processing(self) -> dict[int, tuple[str, ...]]:
        """The post-processors of the job each busy slot runs: their working memory is held until it ends."""
        running = {}
        for slot in self._inference.slots.slots:
            record = self._context.registry.get(slot.job_key) if slot.job_key is not None else None
            if record is not None and record.spec.post_processing:
                running[slot.index] = record.spec.post_processing
        return running

    def _settled_by_deadline(self, record: JobRecord) -> bool:
        """Fault a job that can no longer finish before its deadline, drop one past it; True if either."""
        decision = start_decision(self._context.clock(), record.deadline, self._context.stats.expected_job_seconds)
        if decision is StartDecision.DROP:
            self._reporter.drop(
                record, "its deadline passed before a slot was free", transient_cause(record.spec.model)
            )
        elif decision is StartDecision.FAULT:
            reason = "it could no longer finish before its deadline"
            self._reporter.fault(record, reason, transient_cause(record.spec.model))
        return decision is not StartDecision.RUN

    # --- withdrawals ----------------------------------------------------------------------------

    def _fault_withdrawn(self, record: JobRecord, withdrawal: Withdrawal) -> None:
        """A held job needing a subject withdrawn for good reason: it would fail the same way, so it is not run.

        Faulting it now hands it back to the horde at once (another worker takes it) instead of at its ttl.
        """
        subject = withdrawal.cause.subject
        self._reporter.fault(record, f"its {subject.describe()} is withdrawn ({withdrawal.reason})", withdrawal.cause)

    def withdrawn(self, withdrawal: Withdrawal) -> None:
        """A subject was just withdrawn: settle the queued jobs that need it (the running ones end by themselves)."""
        if withdrawal.by_cap:
            return  # a cap is no verdict on the held jobs: they may well succeed
        for record in self._context.registry.in_state(JobState.QUEUED):
            if self._context.guard.blocking(record.spec) is withdrawal:
                self._fault_withdrawn(record, withdrawal)
