"""The inference slots: started together, a lost child replaced, a child recycled between jobs.

A lost child's slot is REPLACING until its replacement is ready (which holds no model); repeated
start failures put it OUT_OF_SERVICE (`processes.restarts`). A slot is recycled between jobs: its
child is stopped gracefully, a new one started and the model the old one held preloaded
(PRELOADING), and only then does the slot take its next job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from horde_worker_regen.pipeline.child_seat import ChildSeat
from horde_worker_regen.pipeline.lifecycle import SlotState
from horde_worker_regen.pipeline.slot import Slot
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.messages import Preload
from horde_worker_regen.processes.restarts import RESTART_ATTEMPTS, GaveUp
from horde_worker_regen.scheduling.residency import SlotView

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

    def servable_post_processors(self) -> frozenset[str] | None:
        """The managed post-processors (level 13's, strip_background) every slot's child can run (as each last
        came up); None before any child came up. A slot out of service serves nothing and has no say."""
        reports = [
            slot.ready.post_processors
            for slot in self.slots
            if slot.ready is not None and slot.state is not SlotState.OUT_OF_SERVICE
        ]
        if not reports:
            return None
        return frozenset(reports[0]).intersection(*reports[1:])

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

            self._restart(slot, up, on_give_up)
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

        self._restart(slot, up, on_give_up, stop_old)

    def _restart(
        self,
        slot: Slot,
        up: Callable[[ChildHandle], None],
        on_give_up: GiveUp,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """A new child for the slot in the background; out of service if none comes up."""

        def failed(attempt: int, error: ChildStartError) -> None:
            logger.warning(f"Slot {slot.index}: start attempt {attempt} of {RESTART_ATTEMPTS} failed: {error}")

        def gave_up(result: GaveUp) -> None:
            slot.gave_up()
            on_give_up(
                f"Inference slot {slot.index} is out of service: its process failed to start "
                f"{result.attempts} times in a row (last: {result.last}). See logs/bridge_{slot.index + 1}.log "
                f"for the cause, e.g. a GPU out of memory or a broken install; "
                f"lower max_threads or fix the cause, then restart the worker"
            )

        slot.seat.restart(failed, up, gave_up, before)

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
