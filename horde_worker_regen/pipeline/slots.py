"""The inference slots: one child each, what job it holds, and replacing it when it is lost.

A slot knows its child handle, the key of the job it runs and the model its child last ran (children
keep their model loaded between jobs), nothing else about the job. A lost child's slot is out of
service until its replacement is ready (which holds no model); repeated start failures give up.
A slot is recycled between jobs: its child is stopped gracefully, a new one started and the model the
old one held preloaded, and only then does the slot take its next job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.messages import ChildReady, Preload
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.scheduling.policy import retry_delay
from horde_worker_regen.scheduling.residency import SlotView

REPLACE_ATTEMPTS = 3


@dataclass(eq=False)
class Slot:
    """One inference slot."""

    index: int
    spec: ChildSpec
    handle: ChildHandle | None = None
    job_key: str | None = None
    model: str | None = None
    watchdog: asyncio.TimerHandle | None = None
    # The latest sampling step its child reported for the job held (0 of 0 until the first one).
    step: int = 0
    total_steps: int = 0
    stage_timer: asyncio.TimerHandle | None = None
    jobs_run: int = 0  # by the current child
    preloading: bool = False
    out_of_service: bool = False
    # How its latest child came up; kept while a replacement starts (a slot's pinning never changes).
    ready: ChildReady | None = None

    @property
    def idle(self) -> bool:
        """True when its child is up, holds no job and is not loading a model."""
        return self.handle is not None and self.job_key is None and not self.preloading

    def release(self) -> str | None:
        """Forget the job held (returning its key) and cancel its timers."""
        key, self.job_key = self.job_key, None
        self.step = self.total_steps = 0
        for timer in (self.watchdog, self.stage_timer):
            if timer is not None:
                timer.cancel()
        self.watchdog = self.stage_timer = None
        return key

    def arm_stage_timer(self, delay: float, callback: Callable[[], None]) -> None:
        """(Re)start the timer of the job's current stage."""
        if self.stage_timer is not None:
            self.stage_timer.cancel()
        self.stage_timer = asyncio.get_running_loop().call_later(delay, callback)

    @property
    def device(self) -> DeviceReport | None:
        """The GPU its child reported being pinned to; None on the CPU or before any child came up."""
        return self.ready.device if self.ready is not None else None

    def new_child(self, handle: ChildHandle | None, ready: ChildReady | None = None) -> None:
        """A new child (or none) serves this slot: nothing it ran or loaded is known yet."""
        self.handle, self.jobs_run, self.preloading = handle, 0, False
        if ready is not None:
            self.ready = ready


class SlotPool:
    """Every inference slot, started and replaced through the supervisor."""

    def __init__(self, supervisor: ChildClient, specs: list[ChildSpec]) -> None:
        self._supervisor = supervisor
        self.slots = [Slot(index, spec) for index, spec in enumerate(specs)]
        self._replacing: set[asyncio.Task[None]] = set()

    async def start_all(self, on_started: Callable[[str], None] | None = None) -> None:
        """Start every slot's child in parallel; ChildStartError if any fails (the others are stopped).

        `on_started(name)` is called as each child becomes ready."""

        async def start(spec: ChildSpec) -> ChildHandle:
            handle = await self._supervisor.start(spec)
            if on_started is not None:
                on_started(spec.name)
            return handle

        results = await asyncio.gather(*(start(slot.spec) for slot in self.slots), return_exceptions=True)
        for slot, result in zip(self.slots, results, strict=True):
            if isinstance(result, ChildHandle):
                slot.new_child(result, result.ready.result())
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise ChildStartError("; ".join(str(failure) for failure in failures))

    def idle_indexes(self) -> list[int]:
        """The slots ready for a job."""
        return [slot.index for slot in self.slots if slot.idle]

    def all_down(self) -> bool:
        """True when no slot has a child and none is being restarted: nothing can run."""
        return not self._replacing and all(slot.handle is None for slot in self.slots)

    def all_out_of_service(self) -> bool:
        """True when every slot has given up restarting its child."""
        return all(slot.out_of_service for slot in self.slots)

    def views(self) -> list[SlotView]:
        """Every slot as the residency policies see it (slots without a child are never idle)."""
        return [SlotView(slot.index, slot.model, slot.idle) for slot in self.slots]

    def busy_count(self) -> int:
        """Slots holding a job."""
        return sum(1 for slot in self.slots if slot.job_key is not None)

    def slot_of(self, handle: ChildHandle) -> Slot | None:
        """The slot whose current child is `handle`."""
        return next((slot for slot in self.slots if slot.handle is handle), None)

    def replace(self, slot: Slot, on_ready: Callable[[], None], on_give_up: Callable[[str], None]) -> None:
        """Start a new child for a slot whose child was lost, in the background."""
        slot.new_child(None)
        slot.model = None
        self._in_background(self._replace(slot, on_ready, on_give_up))

    def recycle(self, slot: Slot, reason: str, on_ready: Callable[[], None], on_give_up: Callable[[str], None]) -> None:
        """Between jobs: stop the slot's child gracefully, start a new one and preload the model it held."""
        handle, model = slot.handle, slot.model
        assert handle is not None and slot.job_key is None
        logger.info(f"Recycling slot {slot.index} ({handle.name}, pid {handle.process.pid}): {reason}")
        slot.new_child(None)
        self._in_background(self._recycle(slot, handle, model, on_ready, on_give_up))

    async def _recycle(
        self,
        slot: Slot,
        old: ChildHandle,
        model: str | None,
        on_ready: Callable[[], None],
        on_give_up: Callable[[str], None],
    ) -> None:
        await self._supervisor.stop(old)
        slot.model = None
        if not await self._start_child(slot, on_give_up):
            return
        handle = slot.handle
        assert handle is not None
        if model is not None and self._supervisor.send(handle, Preload(handle.incarnation, model)):
            slot.model, slot.preloading = model, True  # idle again once `ModelPreloaded` arrives
        on_ready()

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, slot: Slot, on_ready: Callable[[], None], on_give_up: Callable[[str], None]) -> None:
        if await self._start_child(slot, on_give_up):
            on_ready()

    async def _start_child(self, slot: Slot, on_give_up: Callable[[str], None]) -> bool:
        """Start the slot's child, a few attempts; False (and the slot out of service) if none comes up."""
        errors: list[str] = []
        for attempt in range(REPLACE_ATTEMPTS):
            try:
                handle = await self._supervisor.start(slot.spec)
                slot.new_child(handle, handle.ready.result())
            except ChildStartError as error:
                logger.warning(f"Slot {slot.index}: start attempt {attempt + 1} of {REPLACE_ATTEMPTS} failed: {error}")
                errors.append(str(error))
                if attempt + 1 < REPLACE_ATTEMPTS:
                    await asyncio.sleep(retry_delay(attempt, base=1.0))
                continue
            return True
        # This slot is not coming back: stop counting it as being restarted.
        current = asyncio.current_task()
        if current is not None:
            self._replacing.discard(current)
        slot.out_of_service = True
        on_give_up(
            f"Inference slot {slot.index} is out of service: its process failed to start "
            f"{REPLACE_ATTEMPTS} times in a row (last: {errors[-1]}). See logs/bridge_{slot.index + 1}.log "
            f"for the cause, e.g. a GPU out of memory or a broken install; "
            f"lower max_threads or fix the cause, then restart the worker"
        )
        return False

    def cancel_replacements(self) -> None:
        """Stop starting replacements (shutdown)."""
        for task in list(self._replacing):
            task.cancel()
