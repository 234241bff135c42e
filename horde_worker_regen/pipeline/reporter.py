"""The end of every job: spool its result, upload and submit each id, or fault or drop it; then finish it.

A job enters reporting with its checked images (or as faulted) and leaves the registry when every id
has its outcome. Each job's work in the background (fetching its inputs, reporting it) is one tracked
task, so that a fault can cancel it, an unexpected error drops the job instead of losing it, and an
abort can give the reports a few seconds and cancel the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord, JobState
from horde_worker_regen.jobs.spec import JobInputs
from horde_worker_regen.pipeline.reporting import IdReporter, image_reports, report_job
from horde_worker_regen.pipeline.settings import PipelineContext
from horde_worker_regen.pipeline.spool import ResultSpool, entries_for
from horde_worker_regen.pipeline.submitter import ImageReport
from horde_worker_regen.scheduling.breaker import Cause, Withdrawal
from horde_worker_regen.scheduling.retries import described, transient_cause

RECENT_FAULTS_KEPT = 50


@dataclass(frozen=True)
class RecentFault:
    """A job that faulted or was dropped, kept for the dashboard (`at` is wall-clock time)."""

    at: float
    job_key: str
    images: int
    outcome: str
    reason: str


@dataclass(frozen=True)
class ReporterHooks:
    """What the reporter tells the rest of the pipeline."""

    forget_check: Callable[[str], None]  # a job ended: stop waiting for its safety check
    withdrawn: Callable[[Withdrawal], None]  # a fault withdrew a subject: settle the queued jobs needing it
    unhandled_fault: Callable[[str], None]  # an unexpected error (exit_on_unhandled_faults)


class Reporter:
    """Reports every job once: its images, or its fault; drops what cannot be reported."""

    def __init__(
        self, context: PipelineContext, submitter: IdReporter, spool: ResultSpool | None, hooks: ReporterHooks
    ) -> None:
        self._context = context
        self._submitter = submitter
        self._spool = spool
        self._hooks = hooks
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.recent_faults: deque[RecentFault] = deque(maxlen=RECENT_FAULTS_KEPT)

    def fault(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """Report every id of the job as faulted (once), so the horde re-queues them now.

        A fault with a `cause` counts toward the fault breaker; one without is none of this worker's
        doing and nothing here could avoid it (a payload outside the contract, a stop).
        """
        logger.warning(f"Job {record.key} ({len(record.ids)} image(s)) faulted: {reason}")
        self._context.events.emit("job_faulted", record.key, reason=reason, cause=described(cause))
        self._count(record, cause, reason)
        self.recent_faults.append(RecentFault(time.time(), record.key, len(record.ids), "faulted", reason))
        record.fault_reason = reason
        self._hooks.forget_check(record.key)
        self._cancel_task(record.key)
        self.start_reporting(record)

    def drop(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """End a job without reporting it (the horde aborts it by itself, which it counts as a fault)."""
        logger.warning(f"Job {record.key} ({len(record.ids)} image(s)) dropped: {reason}")
        self._context.events.emit("job_dropped", record.key, reason=reason, cause=described(cause))
        self._count(record, cause, reason)
        self.recent_faults.append(RecentFault(time.time(), record.key, len(record.ids), "dropped", reason))
        self._hooks.forget_check(record.key)
        self._cancel_task(record.key)
        record.results = {index: IdResult(IdOutcome.DROPPED, 0.0, reason) for index in range(len(record.ids))}
        self._finish(record, JobState.DROPPED)

    def _count(self, record: JobRecord, cause: Cause | None, reason: str) -> None:
        if cause is not None and (withdrawal := self._context.guard.count(record, cause, reason)) is not None:
            subject = withdrawal.cause.subject.describe()
            self._context.events.emit("subject_withdrawn", record.key, subject=subject, reason=withdrawal.reason)
            self._hooks.withdrawn(withdrawal)

    def start_reporting(self, record: JobRecord, reports: list[ImageReport] | None = None) -> None:
        """Report the job in the background: its checked images (or `reports`), or its fault."""
        self._context.registry.move(record, JobState.UPLOADING)
        self.track(record, self._report(record, reports))

    def resume(self, record: JobRecord, reports: list[ImageReport]) -> None:
        """Report a result an earlier run spooled: registered like any job, in its reporting stage."""
        self._context.registry.add(record)
        self.start_reporting(record, reports)

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
        record.images, record.verdicts, record.inputs = (), (), JobInputs()
        self._context.registry.move(record, state)
        self._context.stats.job_ended(record)
        self._context.events.emit("job_ended", record.key, state=state.value, images=len(record.ids),
                                  reward=record.reward, slot=record.slot, popped_at=record.popped_at,
                                  started_at=record.started_at, finished_at=record.finished_at)  # fmt: skip
        if state is JobState.SUBMITTED:
            logger.info(f"Job {record.key} submitted: {len(record.ids)} image(s), {record.reward:.2f} kudos")

    # --- the jobs' background work --------------------------------------------------------------

    def track(self, record: JobRecord, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a job's background work as its one tracked task."""
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
            self._hooks.unhandled_fault(f"job {key} hit an unexpected error ({error!r})")
            record = self._context.registry.get(key)
            if record is not None and not record.state.is_terminal:
                self.drop(record, f"unexpected error: {error!r}", transient_cause(record.spec.model))

    def _cancel_task(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def settle(self, grace: float) -> None:
        """Give the reports under way `grace` seconds, then cancel those still running (abort)."""
        pending = list(self._tasks.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
