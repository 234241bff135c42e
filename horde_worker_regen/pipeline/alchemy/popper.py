"""Asking the horde for alchemy forms, only for forms this worker can serve now and only when there is room.

Each turn the popper asks the pure policies (`scheduling.alchemy`) which forms it may name (served now,
not withdrawn by the fault breaker) and how many it may take (`pop_plan`); with nothing to ask for, it
waits until a form ends, a child frees, or the breaker's next change. A pop without forms waits as the
image popper's empty pops do (`idle_pop_delay`). Errors follow `horde.errors.classify`: a refusal of the
configuration (a name already taken, a bad key) stops the alchemist and is reported; maintenance, rate
limits and an unreachable horde back off and retry; an answer that cannot be read at all backs off.
A form outside the contract is reported faulted (when its id can be read), the others go on.
In burst mode it says when the alchemist ran dry (`pipeline.burst`): a pop that named every form it could
be offered came back empty with no form in flight, or there is no form it could be offered at all.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.horde.alchemy_wire import (
    AlchemyPop,
    InterrogatePopRequest,
    MalformedAlchemyPop,
    PoppedForm,
    parse_interrogate_pop,
)
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.form_record import FORM_TTL_S, FormRecord
from horde_worker_regen.pipeline.burst import BurstMember
from horde_worker_regen.pipeline.popper import backoff_delay
from horde_worker_regen.scheduling.alchemy import PopPlan
from horde_worker_regen.scheduling.policy import idle_pop_delay

IDLE_RECHECK_S = 5.0  # with nothing to ask for, look again this often (a post-processor's files may land)


@dataclass(frozen=True)
class PopperSettings:
    """Who pops, and how it paces itself."""

    name: str
    priority_usernames: tuple[str, ...]
    max_tiles: int
    bridge_agent: Callable[[], str]
    idle_interval: float
    backoff_cap: float
    threads: int = 1
    ttl: float = FORM_TTL_S


class AlchemyPopper:
    """The alchemist's pop loop: one task, woken when room may have freed."""

    def __init__(
        self,
        client: HordeClient,
        settings: PopperSettings,
        plan: Callable[[], PopPlan],
        take: Callable[[FormRecord, str | None], None],  # a form popped; with a reason: refused
        events: EventLog,
        *,
        on_fatal: Callable[[str], None],
        reopens_in: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        in_flight: Callable[[], int] = lambda: 0,
        burst: BurstMember | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._plan = plan
        self._take = take
        self._events = events
        self._on_fatal = on_fatal
        self._reopens_in = reopens_in
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._in_flight = in_flight  # forms popped and not ended yet
        self._burst = burst
        self._wake = asyncio.Event()  # room may have freed
        self._stopped = asyncio.Event()
        self._stopping = False
        self._errors = 0
        self._started = clock()
        self._last_form_at: float | None = None
        self.maintenance_message: str | None = None

    def wake(self) -> None:
        """Room may have freed: look again."""
        self._wake.set()

    def stop(self) -> None:
        """Pop no more (a pop under way still delivers its forms)."""
        self._stopping = True
        self._stopped.set()

    async def run(self) -> None:
        """Pop until stopped."""
        while not self._stopping:
            self._wake.clear()  # a wake from here on is seen by the wait below
            plan = self._plan()
            if not plan.forms:
                if plan.complete:  # no form can be offered at all
                    self._ran_dry()
                reopens = self._reopens_in()
                await self._pause(IDLE_RECHECK_S if reopens is None else min(reopens, IDLE_RECHECK_S), self._wake)
                continue
            delay, empty = await self._pop_once(plan)
            if empty:
                if plan.complete:
                    self._ran_dry()
                await self._idle_wait(delay, plan)
            elif delay > 0:
                await self._pause(delay)  # backoff is not cut short by the image side's activity

    def _request(self, plan: PopPlan) -> InterrogatePopRequest:
        settings = self._settings
        return InterrogatePopRequest(
            name=settings.name,
            priority_usernames=list(settings.priority_usernames),
            forms=list(plan.forms),
            amount=plan.amount,
            bridge_agent=settings.bridge_agent(),
            threads=settings.threads,
            max_tiles=settings.max_tiles,
        )

    async def _pop_once(self, plan: PopPlan) -> tuple[float, bool]:
        """One pop; how long to wait before the next one, and whether the horde had no form for it."""
        popped_at = self._clock()
        try:
            raw = await self._client.interrogate_pop(self._request(plan))
        except HordeRequestError as error:
            return self._failed(error), False
        if self.maintenance_message is not None:
            logger.info("The alchemist is out of maintenance; popping forms again")
            self.maintenance_message = None
        try:
            answer = parse_interrogate_pop(raw, plan.forms)
        except MalformedAlchemyPop as error:
            logger.error(f"Interrogation pop answer not understood: {str(error)[:200]}; asking again with backoff")
            return self._error_delay(), False
        self._errors = 0
        self._answered(answer, popped_at)
        if answer.forms or answer.refused:
            self._last_form_at = popped_at
            if self._burst is not None:
                self._burst.busy()
            return 0.0, False
        return self._idle_delay(popped_at), True

    async def _idle_wait(self, delay: float, asked: PopPlan) -> None:
        """After an empty pop: wait `delay`, unless room opens for forms that pop did not ask for (a slot
        freed for post-processors while it asked for analysis forms only), or (burst mode, after a pop
        that named every form) the last form in flight ended: ask at once whether the run may end."""
        deadline = self._clock() + delay
        while not self._stopping and (remaining := deadline - self._clock()) > 0:
            self._wake.clear()
            await self._pause(remaining, self._wake)
            if set(self._plan().forms) - set(asked.forms):
                return
            burst = self._burst
            if burst is not None and asked.complete and not burst.is_dry and self._in_flight() == 0:
                return

    def _ran_dry(self) -> None:
        """Burst mode: nothing more for this alchemist now; dry once no form is in flight either."""
        if self._burst is not None and self._in_flight() == 0:
            self._burst.dry()

    def _answered(self, answer: AlchemyPop, popped_at: float) -> None:
        self._events.emit("alchemy_pop_answered", seconds=round(self._clock() - popped_at, 6),
                          forms=len(answer.forms), refused=len(answer.refused))  # fmt: skip
        for form in answer.forms:
            self._take(self._record(form, popped_at), None)
        for refused in answer.refused:
            logger.warning(f"A popped form is outside the API contract: {refused.reason}")
            if refused.form_id:  # reported faulted, so the horde need not wait for its deadline
                record = FormRecord(refused.form_id, refused.form, {}, "", None, popped_at, self._settings.ttl)
                self._take(record, f"its pop answer is outside the API contract: {refused.reason}")

    def _record(self, form: PoppedForm, popped_at: float) -> FormRecord:
        return FormRecord(
            form.id, form.form, form.options, form.source_image, form.r2_upload, popped_at, self._settings.ttl
        )

    def _idle_delay(self, popped_at: float) -> float:
        since = popped_at - (self._last_form_at if self._last_form_at is not None else self._started)
        delay = idle_pop_delay(self._settings.idle_interval, since, had_job=self._last_form_at is not None)
        return max(0.0, delay - (self._clock() - popped_at))

    def _failed(self, error: HordeRequestError) -> float:
        verdict = classify(error)
        if verdict.action is ErrorAction.FATAL:
            self._stopping = True
            self._on_fatal(f"the horde refused the alchemist: {verdict.operator_message}")
            if self._burst is not None:
                self._burst.dry()  # it never pops again: the run need not wait for it
            return 0.0
        if verdict.action is ErrorAction.MAINTENANCE:
            if self.maintenance_message != error.message:
                logger.warning(f"The horde keeps the alchemist '{self._settings.name}' in maintenance: "
                               f"{error.message or '(no message)'}; asking again with backoff")  # fmt: skip
            self.maintenance_message = error.message
            return self._error_delay()
        if verdict.action is ErrorAction.BACK_OFF:
            return max(verdict.delay, backoff_delay(1, self._settings.backoff_cap, self._rng))
        logger.debug(f"Interrogation pop failed ({error}); retrying with backoff")
        return self._error_delay()

    def _error_delay(self) -> float:
        self._errors += 1
        return backoff_delay(self._errors, self._settings.backoff_cap, self._rng)

    async def _pause(self, delay: float, wake: asyncio.Event | None = None) -> None:
        """Wait `delay` s, or until stopped (or `wake` is set)."""
        waits = [asyncio.ensure_future(self._stopped.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
