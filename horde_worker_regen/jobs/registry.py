"""All jobs in flight, indexed by state, with listeners told of every state change.

Listeners are plain callbacks run synchronously on the event loop right after a change: this is how
the popper learns that capacity freed, and how shutdown and burst mode learn that nothing is left.
A job leaves the registry when it reaches a terminal state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from horde_worker_regen.jobs.record import WAITING_STATES, JobRecord, JobState

Listener = Callable[[JobRecord, JobState], None]


class JobRegistry:
    """The non-terminal jobs of this worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}
        self._counts: dict[JobState, int] = dict.fromkeys(JobState, 0)
        self._listeners: list[Listener] = []
        self._empty = asyncio.Event()
        self._empty.set()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(record, previous_state)` after every change (additions included)."""
        self._listeners.append(listener)

    def add(self, record: JobRecord) -> None:
        """Register a job just popped."""
        if record.key in self._jobs:
            raise ValueError(f"job {record.key} is already registered")
        self._jobs[record.key] = record
        self._counts[record.state] += 1
        self._empty.clear()
        self._notify(record, record.state)

    def get(self, key: str) -> JobRecord | None:
        """The job with this key, if still in flight."""
        return self._jobs.get(key)

    def move(self, record: JobRecord, state: JobState) -> None:
        """Change a job's state (checked by its state machine) and tell the listeners."""
        previous = record.move_to(state, self._clock())
        self._counts[previous] -= 1
        self._counts[state] += 1
        if state.is_terminal:
            del self._jobs[record.key]
            self._counts[state] -= 1
            if not self._jobs:
                self._empty.set()
        self._notify(record, previous)

    def _notify(self, record: JobRecord, previous: JobState) -> None:
        for listener in list(self._listeners):
            listener(record, previous)

    def count(self, *states: JobState) -> int:
        """How many jobs are in any of these states."""
        return sum(self._counts[state] for state in states)

    @property
    def waiting(self) -> int:
        """Jobs popped but not yet running: the pop-ahead window."""
        return self.count(*WAITING_STATES)

    @property
    def running(self) -> int:
        """Jobs on an inference slot."""
        return self._counts[JobState.RUNNING]

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(list(self._jobs.values()))

    def in_state(self, state: JobState) -> list[JobRecord]:
        """The jobs in one state, oldest pop first."""
        return [record for record in self._jobs.values() if record.state is state]

    async def wait_empty(self) -> None:
        """Return once no job is in flight."""
        await self._empty.wait()
