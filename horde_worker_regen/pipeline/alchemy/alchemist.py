"""The alchemist: its parts built and wired to the pipeline's children, and what the worker asks of it.

It runs beside the image popper on the same children (`Pipeline.forms`), under its own horde name.
Its pop plan is recomputed whenever room may have freed: a form or an image job changing state, a
child freeing. `stop` ends the popping and `drain` waits for the forms in flight; `abort` faults every
form not yet reporting and gives the reports a few seconds, as the image side does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.alchemy import FormOutcome
from horde_worker_regen.jobs.form_record import FormRecord
from horde_worker_regen.pipeline.alchemy.book import FormBook
from horde_worker_regen.pipeline.alchemy.guard import AlchemyGuard
from horde_worker_regen.pipeline.alchemy.popper import AlchemyPopper, PopperSettings
from horde_worker_regen.pipeline.alchemy.reporter import FormReporter, Reported
from horde_worker_regen.pipeline.alchemy.runner import FormRunner, RunnerSettings
from horde_worker_regen.pipeline.alchemy.stats import AlchemyStats
from horde_worker_regen.pipeline.burst import BurstMember
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.scheduling.alchemy import (
    AlchemyCapacity,
    FormAvailability,
    FormSupply,
    PopPlan,
    form_availability,
    form_room,
    pop_plan,
    served_forms,
)
from horde_worker_regen.scheduling.breaker import BreakerSettings


@dataclass(frozen=True)
class AlchemySettings:
    """The alchemist's configuration, as its parts use it."""

    forms: tuple[str, ...]  # the configured forms, by their horde names
    popper: PopperSettings
    runner: RunnerSettings
    breaker: BreakerSettings
    allow_concurrent: bool = True


class Alchemist:
    """Pops alchemy forms and runs them on the pipeline's children; one per worker."""

    def __init__(
        self,
        client: HordeClient,
        pipeline: Pipeline,
        fetcher: InputFetcher,
        settings: AlchemySettings,
        supply: Callable[[], FormSupply],
        *,
        on_fatal: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        burst: BurstMember | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._settings = settings
        self._supply = supply
        self._stopping = False
        self.paused: Callable[[], bool] = lambda: False  # the owner paused popping: no form is asked for
        self.images_coming: Callable[[], bool] = lambda: False  # the image popper's latest pop brought a job
        self.book = FormBook(clock)
        self.guard = AlchemyGuard(settings.breaker, clock)
        self.stats = AlchemyStats(clock)
        self._reporter = FormReporter(client, self._ended, clock)
        self._runner = FormRunner(
            self.book, pipeline.forms, fetcher, self._reporter, self.guard, events=pipeline.events,
            settings=settings.runner, images_waiting=lambda: pipeline.registry.waiting,
            images_coming=self._images_coming_now, clock=clock,
        )  # fmt: skip
        self.popper = AlchemyPopper(
            client, settings.popper, self.plan, self._runner.take, pipeline.events,
            on_fatal=on_fatal, reopens_in=self.guard.reopens_in, clock=clock, in_flight=lambda: len(self.book),
            burst=burst,
        )  # fmt: skip
        pipeline.forms.listener = self
        self.book.subscribe(lambda record, previous: self.popper.wake())
        pipeline.registry.subscribe(lambda record, previous: self.popper.wake())

    # --- what to pop ----------------------------------------------------------------------------

    def _images_coming_now(self) -> bool:
        """`images_coming` as set now (the worker sets it once the image popper exists)."""
        return self.images_coming()

    @property
    def name(self) -> str:
        """The alchemist's own name on the horde."""
        return self._settings.popper.name

    @property
    def configured(self) -> tuple[str, ...]:
        """The forms the configuration names, by their horde names."""
        return self._settings.forms

    def availability(self) -> tuple[FormAvailability, ...]:
        """Each configured form, offered now or why not (what the operator sees; the pop asks `plan`)."""
        return form_availability(self._settings.forms, self._supply(), self.guard.withdrawn())

    def served(self) -> tuple[str, ...]:
        """The configured forms this worker can serve now (no other name is ever sent)."""
        return served_forms(self._settings.forms, self._supply())

    def capacity(self) -> AlchemyCapacity:
        """The image side's load and the forms held, as the pop policy reads them."""
        registry, book = self._pipeline.registry, self.book
        return AlchemyCapacity(
            accepting=not self._stopping and not self.paused(),
            max_concurrency=self._settings.runner.max_concurrency,
            allow_concurrent=self._settings.allow_concurrent,
            images_held=len(registry),
            images_waiting=registry.waiting,
            images_coming=self.images_coming(),
            idle_slots=self._pipeline.forms.idle_slots,
            analysis_held=book.held("analysis"),
            post_processing_held=book.held("post_processing"),
            post_processing_waiting=book.waiting("post_processing"),
        )

    def plan(self) -> PopPlan:
        """The next pop: the forms served now and not withdrawn, as many as there is room for."""
        offerable = self.guard.gate(self.served(), self.book.held_by_form())
        return pop_plan(offerable, form_room(self.capacity()))

    # --- the children (`FormListener`) ----------------------------------------------------------

    def form_done(self, child: str, outcome: FormOutcome) -> None:
        """A child answered a form."""
        self._runner.form_done(child, outcome)

    def child_lost(self, child: str, reason: str) -> None:
        """A child is gone, with the forms it held."""
        self._runner.child_lost(child, reason)

    def capacity_changed(self) -> None:
        """A seat may be free: queued forms first, then perhaps a pop."""
        self._runner.dispatch()
        self.popper.wake()

    def _ended(self, record: FormRecord, reported: Reported) -> None:
        self.stats.count(record, reported.state, reported.reward, reported.reason or record.fault_reason or "")
        self._runner.end(record, reported)

    # --- its life -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Pop until stopped."""
        await self.popper.run()

    def stop(self) -> None:
        """Pop no more; the forms in flight go on."""
        self._stopping = True
        self.popper.stop()

    async def drain(self) -> None:
        """Return once every form in flight has ended."""
        await self.book.wait_empty()

    async def abort(self, grace: float) -> None:
        """Stop at once: fault every form not yet reporting, give the reports `grace` seconds."""
        self.stop()
        self._runner.abort()
        await self._reporter.settle(grace)
