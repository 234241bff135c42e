"""The inference slots: one child each, what job it holds, and replacing it when it is lost.

A slot knows its child handle, the key of the job it runs and the model its child last ran (children
keep their model loaded between jobs), nothing else about the job. A lost child's slot is out of
service until its replacement is ready (which holds no model); repeated start failures give up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec, ChildStartError, Supervisor
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

    @property
    def idle(self) -> bool:
        """True when its child is up and holds no job."""
        return self.handle is not None and self.job_key is None

    def release(self) -> str | None:
        """Forget the job held (returning its key) and cancel its watchdog."""
        key, self.job_key = self.job_key, None
        self.step = self.total_steps = 0
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        return key


class SlotPool:
    """Every inference slot, started and replaced through the supervisor."""

    def __init__(self, supervisor: Supervisor, specs: list[ChildSpec]) -> None:
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
                slot.handle = result
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise ChildStartError("; ".join(str(failure) for failure in failures))

    def idle_indexes(self) -> list[int]:
        """The slots ready for a job."""
        return [slot.index for slot in self.slots if slot.idle]

    def all_down(self) -> bool:
        """True when no slot has a child and none is being restarted: nothing can run."""
        return not self._replacing and all(slot.handle is None for slot in self.slots)

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
        slot.handle, slot.model = None, None
        task = asyncio.get_running_loop().create_task(self._replace(slot, on_ready, on_give_up))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, slot: Slot, on_ready: Callable[[], None], on_give_up: Callable[[str], None]) -> None:
        for attempt in range(REPLACE_ATTEMPTS):
            try:
                slot.handle = await self._supervisor.start(slot.spec)
            except ChildStartError as error:
                logger.warning(f"Slot {slot.index}: replacement attempt {attempt + 1} failed: {error}")
                await asyncio.sleep(retry_delay(attempt, base=1.0))
                continue
            on_ready()
            return
        # This slot is not coming back: stop counting it as being restarted.
        current = asyncio.current_task()
        if current is not None:
            self._replacing.discard(current)
        on_give_up(f"inference slot {slot.index} could not be restarted after {REPLACE_ATTEMPTS} attempts")

    def cancel_replacements(self) -> None:
        """Stop starting replacements (shutdown)."""
        for task in list(self._replacing):
            task.cancel()
