"""The alchemy forms in flight, by id, with listeners told of every state change.

A form leaves the book when it reaches a terminal state. The popper is woken by every change (a form
ending or reaching its child frees room); shutdown waits until the book is empty.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator

from horde_worker_regen.jobs.alchemy import FormLane
from horde_worker_regen.jobs.form_record import FORM_WAITING_STATES, FormRecord, FormState

# A form in these states holds its lane's place: its child has not answered yet.
HOLDING_STATES = frozenset({FormState.POPPED, FormState.QUEUED, FormState.RUNNING})

Listener = Callable[[FormRecord, FormState], None]


class FormBook:
    """The non-terminal forms of this alchemist."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._forms: dict[str, FormRecord] = {}
        self._listeners: list[Listener] = []
        self._empty = asyncio.Event()
        self._empty.set()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(record, previous_state)` after every change (additions included)."""
        self._listeners.append(listener)

    def add(self, record: FormRecord) -> bool:
        """Register a form just popped; False if one with its id is already in flight (it is not added)."""
        if record.form_id in self._forms:
            return False
        self._forms[record.form_id] = record
        record.entered[record.state] = record.popped_at
        self._empty.clear()
        self._notify(record, record.state)
        return True

    def get(self, form_id: str) -> FormRecord | None:
        """The form with this id, if still in flight."""
        return self._forms.get(form_id)

    def move(self, record: FormRecord, state: FormState) -> None:
        """Change a form's state (checked by its state machine) and tell the listeners."""
        previous = record.move_to(state, self._clock())
        if state.is_terminal:
            self._forms.pop(record.form_id, None)
            if not self._forms:
                self._empty.set()
        self._notify(record, previous)

    def _notify(self, record: FormRecord, previous: FormState) -> None:
        for listener in list(self._listeners):
            listener(record, previous)

    def __len__(self) -> int:
        return len(self._forms)

    def __iter__(self) -> Iterator[FormRecord]:
        return iter(list(self._forms.values()))

    def in_state(self, *states: FormState) -> list[FormRecord]:
        """The forms in these states, oldest pop first."""
        return sorted((r for r in self._forms.values() if r.state in states), key=lambda r: r.popped_at)

    def held(self, lane: FormLane) -> int:
        """Forms of a lane whose child has not answered yet."""
        return sum(1 for r in self._forms.values() if r.lane == lane and r.state in HOLDING_STATES)

    def waiting(self, lane: FormLane) -> int:
        """Forms of a lane not yet sent to their child."""
        return sum(1 for r in self._forms.values() if r.lane == lane and r.state in FORM_WAITING_STATES)

    def running(self, lane: FormLane) -> int:
        """Forms of a lane on their child."""
        return sum(1 for r in self._forms.values() if r.lane == lane and r.state is FormState.RUNNING)

    def held_by_form(self) -> Counter[str]:
        """Forms held, by name (what may still fault)."""
        return Counter(r.form for r in self._forms.values() if r.state in HOLDING_STATES)

    async def wait_empty(self) -> None:
        """Return once no form is in flight."""
        await self._empty.wait()
