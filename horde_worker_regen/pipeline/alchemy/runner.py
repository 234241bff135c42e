"""One form from its pop to its child's answer: source fetched, queued, sent to its child, timed.

- Intake: the source image is fetched with the image pipeline's `InputFetcher` (URL guard, size and
  pixel limits, retries within the form's time); one that cannot be fetched faults the form.
- Dispatch, oldest first: an analysis form goes to the safety child once no image check waits there;
  a post-processor to an idle inference slot once no image job waits for one or is coming
  (`scheduling.alchemy`).
  A form that could no longer be done and reported before its deadline is faulted instead.
- Its time: `REPORT_RESERVE_S` before its deadline a form not yet answered is faulted (so that its
  `faulted` submit lands before the horde aborts it). A post-processor's child still busy with it
  `kill_after_s` later is stuck: it is killed and replaced. A lost child faults the forms it held.
- Its answer: done, it goes to the reporter; failed, it is faulted (a strike against its form name).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.url_guard import UnsafeUrl
from horde_worker_regen.jobs.alchemy import FormLane, FormOutcome, FormRequest
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.form_record import FormRecord, FormState
from horde_worker_regen.pipeline.alchemy.book import FormBook
from horde_worker_regen.pipeline.alchemy.guard import AlchemyGuard
from horde_worker_regen.pipeline.alchemy.reporter import FormReporter, Reported
from horde_worker_regen.pipeline.form_seats import FormSeats
from horde_worker_regen.pipeline.inputs import InputFetcher, InputRejected
from horde_worker_regen.scheduling.alchemy import (
    REPORT_RESERVE_S,
    FormStart,
    form_start,
    may_send_analysis,
    may_take_slot,
)
from horde_worker_regen.scheduling.breaker import CauseKind

SOURCE_ATTEMPTS = 3
# What a form is expected to take until one of its lane has been timed.
FIRST_GUESS_S: dict[FormLane, float] = {"analysis": 5.0, "post_processing": 15.0}
SMOOTHING = 0.3  # weight of the latest duration in the running estimate


@dataclass(frozen=True)
class RunnerSettings:
    """How many forms run at once per lane, and when a post-processor's stuck child is killed."""

    max_concurrency: int
    kill_after_s: float  # post_process_timeout


class FormRunner:
    """Takes each popped form to its child and its answer to the reporter."""

    def __init__(
        self,
        book: FormBook,
        seats: FormSeats,
        fetcher: InputFetcher,
        reporter: FormReporter,
        guard: AlchemyGuard,
        *,
        events: EventLog,
        settings: RunnerSettings,
        images_waiting: Callable[[], int],
        images_coming: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._seats = seats
        self._fetcher = fetcher
        self._reporter = reporter
        self._guard = guard
        self._events = events
        self._settings = settings
        self._images_waiting = images_waiting
        self._images_coming = images_coming  # the image popper's latest pop brought a job: more are coming
        self._clock = clock
        self._expected: dict[FormLane, float] = dict(FIRST_GUESS_S)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._fetches: dict[str, asyncio.Task[None]] = {}

    # --- intake ---------------------------------------------------------------------------------

    def take(self, record: FormRecord, refused: str | None = None) -> None:
        """A form just popped: time it and fetch its source; one `refused` (outside the contract) is faulted."""
        if not self._book.add(record):
            logger.warning(f"Form {record.form_id} was handed out again while still in flight; ignored")
            return
        self._events.emit("form_popped", record.form_id, form=record.form, lane=record.lane)
        if refused is not None:
            self.fault(record, refused, None)
            return
        loop = asyncio.get_running_loop()
        due = max(0.0, record.deadline - REPORT_RESERVE_S - self._clock())
        self._timers[record.form_id] = loop.call_later(due, self._out_of_time, record)
        task = loop.create_task(self._fetch(record), name=f"form {record.form_id} source")
        self._fetches[record.form_id] = task
        task.add_done_callback(lambda _: self._fetches.pop(record.form_id, None))

    async def _fetch(self, record: FormRecord) -> None:
        try:
            data = await self._fetcher.fetch_one(record.source, record.deadline - REPORT_RESERVE_S, SOURCE_ATTEMPTS)
        except (HordeRequestError, UnsafeUrl, InputRejected) as error:
            self.fault(record, f"its source image could not be used ({error})", None)
            return
        if record.state is FormState.POPPED:
            record.source_image = data
            self._book.move(record, FormState.QUEUED)
            self.dispatch()

    # --- dispatch -------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Send queued forms to their children, oldest first, as far as the seats allow."""
        for record in self._book.in_state(FormState.QUEUED):
            decision = form_start(self._clock(), record.deadline, self._expected[record.lane])
            if decision is FormStart.FAULT:
                self.fault(record, "it could no longer be done and reported before its deadline", None)
            elif decision is FormStart.DROP:
                self.end(record, Reported(FormState.DROPPED, reason="its deadline passed before it could start"))
            else:
                self._start(record)

    def _start(self, record: FormRecord) -> None:
        request = FormRequest(record.form_id, record.form, record.source_image, record.payload)
        child: str | None = None
        if record.lane == "analysis":
            running = self._book.running("analysis")
            if may_send_analysis(self._seats.image_checks_pending, running, self._settings.max_concurrency):
                child = self._seats.run_analysis(request)
        elif may_take_slot(self._images_waiting(), self._images_coming()):
            child = self._seats.run_on_idle_slot(request)
        if child is None:
            return  # it waits for its seat
        record.child, record.started_at = child, self._clock()
        self._book.move(record, FormState.RUNNING)
        self._events.emit("form_started", record.form_id, form=record.form, lane=record.lane, child=child)

    # --- the children's answers -------------------------------------------------------------------

    def form_done(self, child: str, outcome: FormOutcome) -> None:
        """A child's answer: done, to the reporter; failed, faulted."""
        record = self._book.get(outcome.form_id)
        if record is None or record.state is not FormState.RUNNING or record.child != child:
            logger.debug(f"Form {outcome.form_id}: a late answer from {child} ignored")
            return
        self._timed(record)
        problem = _problem_with(record, outcome)
        self._events.emit("form_done", record.form_id, form=record.form, ok=problem is None,
                          seconds=round(outcome.seconds, 6), error=problem)  # fmt: skip
        if problem is not None:
            self.fault(record, problem, "failing_feature")
            return
        self._guard.succeeded(record.form)
        record.outcome = outcome
        self._to_reporter(record)

    def child_lost(self, child: str, reason: str) -> None:
        """The forms a lost child held are faulted (a crash against their form name)."""
        for record in self._book.in_state(FormState.RUNNING):
            if record.child == child:
                self.fault(record, f"its process was lost ({reason})", "crashing_model")

    def _timed(self, record: FormRecord) -> None:
        if record.started_at is not None:
            took = self._clock() - record.started_at
            self._expected[record.lane] += SMOOTHING * (took - self._expected[record.lane])

    # --- faults, time, the end ------------------------------------------------------------------

    def _out_of_time(self, record: FormRecord) -> None:
        """Its time is up: fault it while its `faulted` submit can still land; unstick its child later."""
        self._timers.pop(record.form_id, None)
        if record.state not in (FormState.POPPED, FormState.QUEUED, FormState.RUNNING):
            return
        running = record.state is FormState.RUNNING
        self.fault(record, "it was not done in time to be reported before its deadline", "transient")
        if running and record.lane == "post_processing" and record.started_at is not None:
            delay = max(0.0, record.started_at + self._settings.kill_after_s - self._clock())
            asyncio.get_running_loop().call_later(delay, self._unstick, record.form_id)

    def _unstick(self, form_id: str) -> None:
        if self._seats.kill_slot_of(form_id, f"it was still running alchemy form {form_id} past its time"):
            logger.warning(f"The inference process stuck on form {form_id} was killed; it is being replaced")

    def fault(self, record: FormRecord, reason: str, kind: CauseKind | None) -> None:
        """Report the form faulted (once); `kind`: how it counts against its form name (None: not at all)."""
        if record.state not in (FormState.POPPED, FormState.QUEUED, FormState.RUNNING):
            return
        logger.warning(f"Form {record.form_id} ({record.form}) faulted: {reason}")
        record.fault_reason = reason
        self._events.emit("form_faulted", record.form_id, form=record.form, reason=reason)
        self._guard.count(record.form, kind, reason)
        self._to_reporter(record)

    def _to_reporter(self, record: FormRecord) -> None:
        self._cancel(record.form_id)
        self._book.move(record, FormState.REPORTING)
        self._reporter.report(record)

    def end(self, record: FormRecord, reported: Reported) -> None:
        """The form's last state: its event, the book (which wakes the popper)."""
        self._cancel(record.form_id)
        record.reward = reported.reward
        self._events.emit("form_ended", record.form_id, form=record.form, state=reported.state.value,
                          reward=reported.reward, reason=reported.reason or record.fault_reason)  # fmt: skip
        if reported.state is FormState.DROPPED:
            logger.warning(f"Form {record.form_id} ({record.form}) dropped: {reported.reason}")
        self._book.move(record, reported.state)

    def _cancel(self, form_id: str) -> None:
        timer = self._timers.pop(form_id, None)
        if timer is not None:
            timer.cancel()
        fetch = self._fetches.pop(form_id, None)
        if fetch is not None and fetch is not asyncio.current_task():
            fetch.cancel()

    def abort(self) -> None:
        """Shutdown at once: every form not yet reporting is reported faulted."""
        for record in self._book.in_state(FormState.POPPED, FormState.QUEUED, FormState.RUNNING):
            self.fault(record, "the worker was stopped before it finished", None)


def _problem_with(record: FormRecord, outcome: FormOutcome) -> str | None:
    """Why a child's answer cannot be reported as done (None: it can)."""
    if outcome.error is not None:
        return outcome.error
    if record.lane == "post_processing":
        return None if outcome.image else "its post-processor returned no image"
    if not isinstance(outcome.result, dict) or record.form not in outcome.result:
        return f"its result is not a {record.form} result"
    return None
