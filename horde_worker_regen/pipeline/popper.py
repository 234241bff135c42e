"""Asking the horde for jobs, only when a slot or a queue place can hold one.

The popper sleeps on an event that the registry sets whenever a job changes state; on each wake it
asks the pure `pop_allowance` policy how many jobs it may hold more, and pops until that is zero.
So the next job is popped (and its inputs fetched) while the current ones run, and never without a
place for it. "No job" and errors back off (honouring `Retry-After`); a fatal error stops the worker.
Two lasting states are logged once when they begin and once when they end, never per attempt: the
horde unreachable or failing (5xx), and this worker in maintenance (`maintenance_message`). In both
the popper keeps asking with a growing, jittered backoff capped at `backoff_cap` and resumes by
itself; jobs in flight are finished and submitted meanwhile (their submits retry on their own).
After an empty pop the next one follows `idle_pop_delay` (scheduling.policy): every
`idle_interval` seconds, faster for a minute after work arrived, slower after a long quiet spell;
the wait counts from the start of the pop. In burst mode a "no job" answer with nothing in flight
says the image side ran dry (`pipeline.burst`): the run ends once every popper of the worker has.
The models offered change while the worker runs (a download finishing adds one); with none ready yet,
the popper waits. The fault breaker (`PopLimits`) may hold models back and turn pop
flags off; with no model left to offer, the popper waits for a job to end or for the breaker's next
change by itself (a cool-down ending).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest
from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.horde.horde_messages import HordeMessage, HordeMessageBoard
from horde_worker_regen.horde.pop import MalformedPop, NoJob, PoppedJob, parse_pop_answer
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.pipeline.burst import BurstMember
from horde_worker_regen.pipeline.idle_watch import IdleWatch
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.scheduling.policy import CapacitySnapshot, idle_pop_delay, pop_allowance

IDLE_POP_INTERVAL_S = 1.0
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


class PopLimits(Protocol):
    """What the fault breaker lets the next pop ask for, beyond the models (`offer` filters those)."""

    def pop_flags_off(self) -> frozenset[str]:
        """The `allow_*` pop flags to send as false."""
        ...

    def reopens_in(self) -> float | None:
        """Seconds until the breaker may allow more by itself; None: only when a job ends."""
        ...


@dataclass
class PopperSettings:
    """How the popper sizes its window and when it stops."""

    slots: int
    queue_size: int
    idle_interval: float = IDLE_POP_INTERVAL_S  # idle_pop_interval
    backoff_cap: float = MAX_ERROR_DELAY_S


class Popper:
    """The pop loop: one task, woken by registry changes."""

    _limits: PopLimits | None = None  # set by `limit_with`

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
        burst: BurstMember | None = None,
        on_out_of_jobs: Callable[[], None] = lambda: None,
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
        self._burst = burst  # burst mode: says when the image side ran dry
        self._last_pop_had_job = True  # until the horde says otherwise, image jobs are coming
        self._on_out_of_jobs = on_out_of_jobs  # image jobs stopped coming: alchemy may use idle slots
        self._wake = asyncio.Event()
        self._stopping = False
        self._paused = False
        self._errors = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self.maintenance_message: str | None = None  # the horde's message while this worker is in maintenance
        self._trouble: str | None = None  # "unreachable" or "failing" while the horde cannot serve pops
        self._trouble_since = 0.0
        self._started = clock()
        self._last_job_at: float | None = None  # when the last job arrived (idle pacing)
        self._held_back = False  # the fault breaker withdrew every model: no pop until one comes back
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

    @property
    def bridge_agent(self) -> str:
        """The `bridge_agent` the next pop reports."""
        return self._request.bridge_agent or ""  # always set by `build_pop_request`

    def set_bridge_agent(self, agent: str) -> None:
        """Report `agent` from the next pop on: the horde offers jobs, and pays, by the level it claims."""
        if agent != self._request.bridge_agent:
            self._request = self._request.model_copy(update={"bridge_agent": agent})

    def limit_with(self, limits: PopLimits) -> None:
        """Let the fault breaker turn pop flags off and time the wait when it holds every model back."""
        self._limits = limits

    def _request_now(self) -> ImageGenerateJobPopRequest:
        """The pop request, its models ordered by `offer` (the ones this worker can start soonest first)
        and the flags of the features the fault breaker refuses turned off."""
        update: dict[str, object] = {}
        if self._offer is not None:
            update["models"] = self._offer(list(self._request.models))
        if self._limits is not None:
            update.update(dict.fromkeys(self._limits.pop_flags_off(), False))
        return self._request.model_copy(update=update) if update else self._request

    def stop(self) -> None:
        """Pop no more (the pop in progress, if any, still delivers its job)."""
        self._stopping = True
        self._wake.set()

    @property
    def jobs_coming(self) -> bool:
        """Whether image jobs may arrive any moment: it can pop (models offered, not all held back, not
        stopping) and its latest pop brought a job (or none has been answered yet). A slot freed meanwhile
        is theirs; alchemy's post-processors take idle slots only when this is False."""
        can_pop = bool(self._request.models) and not self._held_back and not self._stopping
        return can_pop and self._last_pop_had_job

    def _jobs_came(self, came: bool) -> None:
        if self._last_pop_had_job and not came:
            self._last_pop_had_job = False
            self._on_out_of_jobs()
        self._last_pop_had_job = came

    @property
    def paused(self) -> bool:
        """Whether the owner paused popping (jobs in flight still finish)."""
        return self._paused

    @property
    def horde_state(self) -> str:
        """What the popper is doing, in words for the dashboard and `/status.json` (the first that holds)."""
        states = (
            (self._stopping, "stopping"),
            (self._paused, "paused"),
            (self.maintenance_message is not None, "in maintenance"),
            (self._trouble == "unreachable", "horde unreachable"),
            (self._trouble is not None, "horde failing"),
            (self._held_back, "not popping: every model withdrawn"),
            (not self._request.models, "waiting for a model"),
        )
        return next((words for holds, words in states if holds), "serving")

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
            self._held_back = not self._request_now().models
            if self._held_back:  # the fault breaker holds every model back
                await self._wait_for_breaker()
                continue
            delay = await self._pop_once()
            if delay > 0:
                await self._pause(delay)

    async def _wait_for_breaker(self) -> None:
        """Until a job changes state (a held job ending frees room) or the breaker's next change by itself."""
        timeout = self._limits.reopens_in() if self._limits is not None else None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return

    async def _pop_once(self) -> float:
        """One pop; returns how long to wait before the next one."""
        popped_at = self._clock()
        try:
            raw = await self._client.pop(self._request_now())
        except HordeRequestError as error:
            self._jobs_came(False)
            return self._pop_failed(error)
        self._recovered()
        try:
            answer = parse_pop_answer(raw)
        except Exception as error:  # MalformedPop, or (belt and braces) anything else reading it
            return self._not_understood(error)
        self._errors = 0
        self._horde_messages.note(answer.messages)
        job = answer.ids[0] if isinstance(answer, PoppedJob) and answer.ids else None
        self._pipeline.events.emit("pop_answered", job, seconds=round(self._clock() - popped_at, 6))
        if isinstance(answer, PoppedJob):
            if self._idle is not None:
                self._idle.job_arrived()
            self._last_job_at = popped_at
            self._jobs_came(True)
            if self._burst is not None:
                self._burst.busy()
            self._pipeline.job_popped(answer, popped_at)
            return 0.0
        return self._no_job(answer, popped_at)

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

    def _no_job(self, answer: NoJob, popped_at: float) -> float:
        self._jobs_came(False)
        if answer.skipped:
            logger.debug(f"No job; skipped: {answer.skipped}")
        if self._idle is not None:
            self._idle.no_job(answer.skipped, self._request.models)
        if self._burst is not None and len(self._pipeline.registry) == 0:
            self._burst.dry()  # the run ends here unless the alchemist still has work
            if self._burst.run_ended:
                self._stopping = True
                return 0.0
        return self._idle_delay(popped_at)

    def _idle_delay(self, popped_at: float) -> float:
        """The idle pacing's wait, less the time the empty pop itself took."""
        had_job = self._last_job_at is not None
        since = popped_at - (self._last_job_at if self._last_job_at is not None else self._started)
        delay = idle_pop_delay(self._settings.idle_interval, since, had_job=had_job)
        return max(0.0, delay - (self._clock() - popped_at))

    def _pop_failed(self, error: HordeRequestError) -> float:
        verdict = classify(error)
        if verdict.action is ErrorAction.FATAL:
            self._stopping = True
            self._on_stop(verdict.operator_message, 1)
            return 0.0
        if verdict.action is ErrorAction.MAINTENANCE:
            return self._in_maintenance(error.message)
        if verdict.action is ErrorAction.BACK_OFF:
            # As long as asked (Retry-After is capped when read), but never a tight loop on `Retry-After: 0`.
            delay = max(verdict.delay, backoff_delay(1, self._settings.backoff_cap, self._rng))
            log = logger.debug if error.status == 429 else logger.warning  # a rate limit is routine
            log(f"The horde asks to wait {delay:.0f}s: {verdict.operator_message or error}")
            return delay
        if verdict.action is ErrorAction.RETRY:
            return self._horde_in_trouble(error)
        logger.warning(f"Pop failed ({error}); retrying")
        return self._error_delay()

    def _in_maintenance(self, message: str) -> float:
        if self.maintenance_message != message:
            logger.warning(
                f"The horde keeps this worker in maintenance: {message or '(no message)'}. " + LIFT_MAINTENANCE_HINT
            )
        self.maintenance_message = message
        return self._error_delay()

    def _horde_in_trouble(self, error: HordeRequestError) -> float:
        trouble = "unreachable" if error.status is None else "failing"
        if trouble != self._trouble:
            what = "cannot be reached" if error.status is None else f"is failing (HTTP {error.status})"
            logger.warning(
                f"The horde {what}: {error.message}. Jobs in flight go on; popping waits and retries "
                f"with backoff (at most {self._settings.backoff_cap:.0f}s between tries)"
            )
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
        """Wait `delay` s, or less if stopped; in burst mode also stop waiting once nothing is in flight
        (pop at once to learn whether the run may end), unless this side already said it ran dry."""
        deadline = self._clock() + delay
        while not self._stopping and (remaining := deadline - self._clock()) > 0:
            burst = self._burst
            if burst is not None and not burst.is_dry and len(self._pipeline.registry) == 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return
