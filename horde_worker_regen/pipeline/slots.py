"""The inference slots: one child each, what job it holds, and replacing it when it is lost.

A slot knows its child (a `ChildSeat`), the key of the job it runs and the model its child last ran
(children keep their model loaded between jobs), nothing else about the job. Its lifecycle is a
`SlotState` (`pipeline.lifecycle`, with the moves allowed): a lost child's slot is REPLACING until its
replacement is ready (which holds no model); repeated start failures put it OUT_OF_SERVICE. A slot is
recycled between jobs: its child is stopped gracefully, a new one started and the model the old one
held preloaded (PRELOADING), and only then does the slot take its next job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.pipeline.child_seat import ChildSeat
from horde_worker_regen.pipeline.lifecycle import SLOT_TRANSITIONS, SlotState, move
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.messages import ChildReady, Preload
from horde_worker_regen.processes.restarts import RESTART_ATTEMPTS, GaveUp
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.scheduling.residency import SlotView


@dataclass(eq=False)
class Slot:
    """One inference slot."""

    index: int
    seat: ChildSeat
    state: SlotState = SlotState.DOWN
    job_key: str | None = None
    model: str | None = None
    watchdog: asyncio.TimerHandle | None = None
    # The latest sampling step its child reported for the job held (0 of 0 until the first one).
    step: int = 0
    total_steps: int = 0
    stage_timer: asyncio.TimerHandle | None = None
    jobs_run: int = 0  # by the current child
    # How its latest child came up; kept while a replacement starts (a slot's pinning never changes).
    ready: ChildReady | None = None

    @property
    def spec(self) -> ChildSpec:
        """What its children run."""
        return self.seat.spec

    @property
    def handle(self) -> ChildHandle | None:
        """Its current child, while one is up."""
        return self.seat.handle

    @property
    def idle(self) -> bool:
        """True when its child is up, holds no job and is not loading a model."""
        return self.state is SlotState.IDLE

    @property
    def preloading(self) -> bool:
        """True while its fresh child loads the model the recycled one held."""
        return self.state is SlotState.PRELOADING

    @property
    def device(self) -> DeviceReport | None:
        """The GPU its child reported being pinned to; None on the CPU or before any child came up."""
        return self.ready.device if self.ready is not None else None

    def _move(self, new: SlotState) -> None:
        self.state = move(SLOT_TRANSITIONS, self.state, new, f"slot {self.index}")

    def starting(self) -> None:
        """Its first child is being started."""
        self._move(SlotState.STARTING)
        self.seat.starting()

    def came_up(self, handle: ChildHandle, ready: ChildReady | None = None, *, preloading: str | None = None) -> None:
        """A new child serves it: idle, or first loading `preloading` (the model its recycled child held)."""
        self._move(SlotState.PRELOADING if preloading is not None else SlotState.IDLE)
        self.seat.up(handle)
        self.jobs_run = 0
        if preloading is not None:
            self.model = preloading
        if ready is not None:
            self.ready = ready

    def take(self, job_key: str, model: str) -> None:
        """Its child runs this job (on this model) now."""
        self._move(SlotState.BUSY)
        self.job_key, self.model = job_key, model

    def release(self) -> str | None:
        """Forget the job held (returning its key) and cancel its timers."""
        if self.state is SlotState.BUSY:
            self._move(SlotState.IDLE)
        return self._clear()

    def _clear(self) -> str | None:
        key, self.job_key = self.job_key, None
        self.step = self.total_steps = 0
        for timer in (self.watchdog, self.stage_timer):
            if timer is not None:
                timer.cancel()
        self.watchdog = self.stage_timer = None
        return key

    def preloaded(self, *, failed: bool) -> None:
        """Its fresh child has loaded its model (or failed to: then it holds none); it takes jobs."""
        self._move(SlotState.IDLE)
        self._clear()  # holds no job: this only cancels the preload's timer
        if failed:
            self.model = None

    def arm_stage_timer(self, delay: float, callback: Callable[[], None]) -> None:
        """(Re)start the timer of the job's current stage (or of the preload)."""
        if self.stage_timer is not None:
            self.stage_timer.cancel()
        self.stage_timer = asyncio.get_running_loop().call_later(delay, callback)

    def child_gone(self, *, replacing: bool) -> str | None:
        """Its child died or is being killed: the job it held (its key), forgotten; replaced or not."""
        key = self._clear()
        self._move(SlotState.REPLACING if replacing else SlotState.DOWN)
        self.seat.lost()
        if not replacing:
            self.seat.stopped()
        self.model = None
        return key

    def recycling(self) -> ChildHandle:
        """Between jobs, its child is to be stopped and replaced; that child's handle."""
        self._move(SlotState.REPLACING)
        return self.seat.stopping()

    def gave_up(self) -> None:
        """Its process kept failing to start: out of service until the worker restarts."""
        self._move(SlotState.OUT_OF_SERVICE)
        self.seat.failed()

    def stop(self) -> None:
        """Shutdown: no child from now on (a replacement under way is cancelled)."""
        self._clear()
        if self.state not in (SlotState.DOWN, SlotState.OUT_OF_SERVICE):
            self._move(SlotState.DOWN)
        self.seat.stopped()


GiveUp = Callable[[str], None]


class SlotPool:
    """Every inference slot, started and replaced through the child client."""

    def __init__(self, supervisor: ChildClient, specs: list[ChildSpec]) -> None:
        self._supervisor = supervisor
        self.slots = [Slot(index, ChildSeat(supervisor, spec)) for index, spec in enumerate(specs)]
        self.restarting = True  # off once shutdown begins: lost children are not replaced

    async def start_all(self, on_started: Callable[[str], None] | None = None) -> None:
        """Start every slot's child in parallel; ChildStartError if any fails (the others are stopped).

        `on_started(name)` is called as each child becomes ready."""

        async def start(slot: Slot) -> None:
            slot.starting()
            try:
                handle = await self._supervisor.start(slot.spec)
            except ChildStartError:
                slot.gave_up()
                raise
            slot.came_up(handle, handle.ready.result())
            if on_started is not None:
                on_started(slot.spec.name)

        results = await asyncio.gather(*(start(slot) for slot in self.slots), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise ChildStartError("; ".join(str(failure) for failure in failures))

    def idle_indexes(self) -> list[int]:
        """The slots ready for a job."""
        return [slot.index for slot in self.slots if slot.idle]

    def all_down(self) -> bool:
        """True when no slot has a child and none is being started: nothing can run."""
        return all(slot.state in (SlotState.DOWN, SlotState.OUT_OF_SERVICE) for slot in self.slots)

    def all_out_of_service(self) -> bool:
        """True when every slot has given up restarting its child."""
        return all(slot.state is SlotState.OUT_OF_SERVICE for slot in self.slots)

    def views(self) -> list[SlotView]:
        """Every slot as the residency policies see it (slots without a child are never idle)."""
        return [SlotView(slot.index, slot.model, slot.idle) for slot in self.slots]

    def busy_count(self) -> int:
        """Slots holding a job."""
        return sum(1 for slot in self.slots if slot.job_key is not None)

    def slot_of(self, handle: ChildHandle) -> Slot | None:
        """The slot whose current child is `handle`."""
        return next((slot for slot in self.slots if slot.handle is handle), None)

    def child_gone(self, slot: Slot, on_ready: Callable[[], None], on_give_up: GiveUp) -> str | None:
        """A slot's child is dead or being killed: the key of the job it held; a new child in the background."""
        key = slot.child_gone(replacing=self.restarting)
        if self.restarting:

            def up(handle: ChildHandle) -> None:
                slot.came_up(handle, handle.ready.result())
                on_ready()

            slot.seat.restart(_attempt_logger(slot), up, lambda gave_up: self._gave_up(slot, gave_up, on_give_up))
        return key

    def recycle(self, slot: Slot, reason: str, on_ready: Callable[[], None], on_give_up: GiveUp) -> None:
        """Between jobs: stop the slot's child gracefully, start a new one and preload the model it held."""
        model = slot.model
        old = slot.recycling()
        logger.info(f"Recycling slot {slot.index} ({old.name}, pid {old.process.pid}): {reason}")

        async def stop_old() -> None:
            await self._supervisor.stop(old)
            slot.model = None

        def up(handle: ChildHandle) -> None:
            sent = model is not None and self._supervisor.send(handle, Preload(handle.incarnation, model))
            slot.came_up(handle, handle.ready.result(), preloading=model if sent else None)
            on_ready()

        slot.seat.restart(_attempt_logger(slot), up, lambda gave_up: self._gave_up(slot, gave_up, on_give_up), stop_old)

    def _gave_up(self, slot: Slot, gave_up: GaveUp, on_give_up: GiveUp) -> None:
        slot.gave_up()
        on_give_up(
            f"Inference slot {slot.index} is out of service: its process failed to start "
            f"{gave_up.attempts} times in a row (last: {gave_up.last}). See logs/bridge_{slot.index + 1}.log "
            f"for the cause, e.g. a GPU out of memory or a broken install; "
            f"lower max_threads or fix the cause, then restart the worker"
        )

    def stop_restarting(self) -> None:
        """No more replacements (shutdown): those under way are cancelled, their slots down."""
        self.restarting = False
        for slot in self.slots:
            if slot.seat.restarting:
                slot.stop()

    def stop_all(self) -> None:
        """Abort: every slot down, its job and timers forgotten (the children are killed by the caller)."""
        self.stop_restarting()
        for slot in self.slots:
            slot.stop()


def _attempt_logger(slot: Slot) -> Callable[[int, ChildStartError], None]:
    def failed(attempt: int, error: ChildStartError) -> None:
        logger.warning(f"Slot {slot.index}: start attempt {attempt} of {RESTART_ATTEMPTS} failed: {error}")

    return failed
