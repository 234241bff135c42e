"""One inference slot: its child, the job it holds, the model its child last ran, and its lifecycle.

A slot knows its child (a `ChildSeat`), the key of the job it runs and the model its child last ran
(children keep their model loaded between jobs), nothing else about the job. Every change of its
`SlotState` goes through a method here, which refuses a move `pipeline.lifecycle` does not allow, and
moves its child's state with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.pipeline.child_seat import ChildSeat
from horde_worker_regen.pipeline.lifecycle import SLOT_TRANSITIONS, SlotState, move
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.messages import ChildReady


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

    def take_form(self, form_id: str) -> None:
        """Its child runs an alchemy form now (a post-processor: the model it holds stays loaded)."""
        self._move(SlotState.BUSY)
        self.job_key = form_id

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
