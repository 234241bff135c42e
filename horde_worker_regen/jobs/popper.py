"""Asking the horde for jobs, only when a slot or a queue place can hold one.

The popper sleeps on an event that the registry sets whenever a job changes state; on each wake it
asks the pure `pop_allowance` policy how many jobs it may hold more, and pops until that is zero.
So the next job is popped (and its inputs fetched) while the current ones run, and never without a
place for it. "No job" and errors back off (honouring `Retry-After`); a fatal error stops the worker.
Two lasting states are logged once when they begin and once when they end, never per attempt: the
horde unreachable or failing (5xx), and this worker in maintenance (`maintenance_message`). In both
the popper keeps asking with a growing, jittered backoff capped at `backoff_cap` and resumes by
itself; jobs in flight are finished and submitted meanwhile (their submits retry on their own).
In burst mode a "no job" answer with nothing in flight ends the run. The models offered change while
the worker runs (a download finishing adds one); with none ready yet, the popper waits.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest
from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.horde.horde_messages import HordeMessage, HordeMessageBoard
from horde_worker_regen.horde.pop import MalformedPop, NoJob, PoppedJob, parse_pop_answer
from horde_worker_regen.jobs.idle_watch import IdleWatch
from horde_worker_regen.jobs.pipeline import Pipeline
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.stats import WorkerStats
from horde_worker_regen.scheduling.policy import CapacitySnapshot, pop_allowance

NO_JOB_DELAY_S = 5.0
MAX_ERROR_DELAY_S = 60.0
LIFT_MAINTENANCE_HINT = (
    "Popping has stopped; jobs in flight are still finished and submitted. Fix the cause (see the log for "
    "faulted jobs), then lift it on the horde's website (e.g. https://tinybots.net/artbot/settings, manage "
    "workers) or restart with remove_maintenance_on_init: true. Checking again with backoff; popping resumes "
    "by itself once it is lifted."
)


def backoff_delay(failures: int, cap: float, rng: random.Random) -> float:
    """1, 2, 4, ... seconds for the 1st, 2nd, 3rd failure, at most `cap`, jittered down by up to half."""
    ceiling = min(cap, 2.0 ** min(max(0, failures - 1), 60))  # capped exponent: 2.0**1024 overflows
    return ceiling * rng.uniform(0.5, 1.0)


@dataclass
class PopperSettings:
    """How the popper sizes its window and when it stops."""

    slots: int
    queue_size: int
    burst: bool = False
    no_job_delay: float = NO_JOB_DELAY_S
    backoff_cap: float = MAX_ERROR_DELAY_S


class Popper:
    """The pop loop: one task, woken by registry changes."""

    def __init__(
        self,
        client: HordeClient,
        request: ImageGenerateJobPopRequest,
        pipeline: Pipeline,
        stats: WorkerStats,
        settings: PopperSettings,
        *,
        on_stop: Callable[[str, int], None],
        offer: Callable[[list[str]], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        idle: IdleWatch | None = None,
    ) -> None:
        self._client = client
        self._request = request
        self._pipeline = pipeline
        self._stats = stats
        self._settings = settings
        self._on_stop = on_stop
        self._offer = offer
        self._clock = clock
        self._idle = idle
        self._wake = asyncio.Event()
        self._stopping = False
        self._paused = False
        self._errors = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self.maintenance_message: str | None = None  # the horde's message while this worker is in maintenance
        self._trouble: str | None = None  # "unreachable" or "failing" while the horde cannot serve pops
        self._trouble_since = 0.0
        self._horde_messages = HordeMessageBoard()
        pipeline.registry.subscribe(self._registry_changed)

    def _registry_changed(self, record: JobRecord, previous: JobState) -> None:
        self._wake.set()
        self._stats.set_in_flight(len(self._pipeline.registry) > 0)

    @property
    def models(self) -> list[str]:
        """The models the next pop offers."""
        return list(self._request.models)

    def set_models(self, models: list[str]) -> None:
        """Offer `models` from the next pop on (in this order: the horde prefers the first ones)."""
        if models != self._request.models:
            self._request = self._request.model_copy(update={"models": list(models)})
            self._wake.set()

    def _request_now(self) -> ImageGenerateJobPopRequest:
        """The pop request, its models ordered by `offer` (the ones this worker can start soonest first)."""
        if self._offer is None:
            return self._request
        return self._request.model_copy(update={"models": self._offer(list(self._request.models))})

    def stop(self) -> None:
        """Pop no more (the pop in progress, if any, still delivers its job)."""
        self._stopping = True
        self._wake.set()

    @property
    def paused(self) -> bool:
        """Whether the owner paused popping (jobs in flight still finish)."""
        return self._paused

    def pause(self) -> None:
        """Pop no more until `resume()`: the jobs held finish, then the worker idles (the owner takes the GPU)."""
        self._paused = True
        self._wake.set()

    def resume(self) -> None:
        """Pop again after `pause()`."""
        self._paused = False
        self._wake.set()

    def snapshot(self) -> CapacitySnapshot:
        """The figures the pop policy looks at."""
        registry = self._pipeline.registry
        return CapacitySnapshot(
            slots=self._settings.slots,
            queue_size=self._settings.queue_size,
            running=registry.running,
            waiting=registry.waiting,
            expected_job_seconds=self._stats.expected_job_seconds,
            accepting=not self._stopping,
        )

    async def run(self) -> None:
        """Pop until stopped."""
        while not self._stopping:
            if self._paused or not self._request.models or pop_allowance(self.snapshot()) <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = await self._pop_once()
            if delay > 0:
                await self._pause(delay)

    async def _pop_once(self) -> float:
        """One pop; returns how long to wait before the next one."""
        popped_at = self._clock()
        try:
            raw = await self._client.pop(self._request_now())
        except HordeRequestError as error:
            return self._pop_failed(error)
        self._recovered()
        try:
            answer = parse_pop_answer(raw)
        except Exception as error:  # MalformedPop, or (belt and braces) anything else reading it
            return self._not_understood(error)
        self._errors = 0
        self._horde_messages.note(answer.messages)
        if isinstance(answer, PoppedJob):
            if self._idle is not None:
                self._idle.job_arrived()
            self._pipeline.job_popped(answer, popped_at)
            return 0.0
        return self._no_job(answer)

    def _not_understood(self, error: Exception) -> float:
        """A pop answer with nothing in it that can be reported: log why (briefly), back off, ask again."""
        why = str(error) if isinstance(error, MalformedPop) else f"unexpected {type(error).__name__}"
        logger.error(f"Pop answer not understood: {why[:200]}; asking again with backoff")
        return self._error_delay()

    @property
    def horde_messages(self) -> list[HordeMessage]:
        """The messages the horde sent with its pop answers, newest last (the latest few only)."""
        return list(self._horde_messages.messages)

    def _recovered(self) -> None:
        """The horde answered a pop: end the unreachable and maintenance states, logging each end once."""
        if self._trouble is not None:
            logger.info(f"The horde answers again after {self._clock() - self._trouble_since:.0f}s; popping again")
            self._trouble = None
        if self.maintenance_message is not None:
            logger.info("This worker is out of maintenance; popping again")
            self.maintenance_message = None

    def _no_job(self, answer: NoJob) -> float:
        if answer.skipped:
            logger.debug(f"No job; skipped: {answer.skipped}")
        if self._idle is not None:
            self._idle.no_job(answer.skipped, self._request.models)
        if self._settings.burst and len(self._pipeline.registry) == 0:
            self._stopping = True
            self._on_stop("burst mode: the horde has no job and nothing is in flight", 0)
            return 0.0
        return self._settings.no_job_delay

    def _pop_failed(self, error: HordeRequestError) -> float:
        verdict = classify(error)
        if verdict.action is ErrorAction.FATAL:
            self._stopping = True
            self._on_stop(verdict.operator_message, 1)
            return 0.0
        if verdict.action is ErrorAction.MAINTENANCE:
            return self._in_maintenance(error.message)
        if verdict.action is ErrorAction.BACK_OFF:
            logger.warning(f"The horde asks to wait {verdict.delay:.0f}s: {verdict.operator_message or error}")
            return verdict.delay
        if verdict.action is ErrorAction.RETRY:
            return self._horde_in_trouble(error)
        logger.warning(f"Pop failed ({error}); retrying")
        return self._error_delay()

    def _in_maintenance(self, message: str) -> float:
        if self.maintenance_message != message:
            logger.warning(f"The horde keeps this worker in maintenance: {message or '(no message)'}. "
                           + LIFT_MAINTENANCE_HINT)
        self.maintenance_message = message
        return self._error_delay()

    def _horde_in_trouble(self, error: HordeRequestError) -> float:
        trouble = "unreachable" if error.status is None else "failing"
        if trouble != self._trouble:
            what = "cannot be reached" if error.status is None else f"is failing (HTTP {error.status})"
            logger.warning(f"The horde {what}: {error.message}. Jobs in flight go on; popping waits and retries "
                           f"with backoff (at most {self._settings.backoff_cap:.0f}s between tries)")
            if self._trouble is None:
                self._trouble_since = self._clock()
            self._trouble = trouble
        else:
            logger.debug(f"Pop failed again: {error}")
        return self._error_delay()

    def _error_delay(self) -> float:
        self._errors += 1
        return backoff_delay(self._errors, self._settings.backoff_cap, self._rng)

    async def _pause(self, delay: float) -> None:
        """Wait `delay` s, or less if stopped; in burst mode also stop waiting once nothing is in flight."""
        deadline = self._clock() + delay
        while not self._stopping and (remaining := deadline - self._clock()) > 0:
            if self._settings.burst and len(self._pipeline.registry) == 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return
