"""The worker's event log: one structured record for each thing that happens to a job or a child.

Every record has a kind, a monotonic stamp and, for a job, the job's key; the rest are plain JSON
values. The pipeline, the popper, the reporter and the supervisor emit them; `run --metrics-file`
writes them as JSON lines; the dashboard and the tests read them. A test waits for an event
(`EventLog.wait_for`) instead of sleeping, and asserts on events instead of log text.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from loguru import logger

# What can happen. Job events carry `job`; child events carry `child` (its name with its incarnation).
EventKind = Literal[
    "worker_started",  # serving begins: slots, process figures at start
    "worker_stopped",  # the last record: process figures, kudos, counts
    "pop_answered",  # the horde answered a pop: seconds (the round trip), job (its key, if it gave one)
    "job_popped",  # ids, model, images, ttl
    "job_queued",  # inputs fetched (or none needed): waiting for a slot
    "job_started",  # on a slot: slot, child, attempt
    "stage_started",  # the child entered a stage: stage
    "inference_finished",  # the child answered: slot, ok, started_at / finished_at on the child's clock
    "job_checked",  # the safety verdicts are in: censored
    "job_retried",  # its process was lost; queued again for a fresh one: attempt, reason
    "job_faulted",  # to be reported faulted (every id, once): reason, cause
    "job_dropped",  # ended without a report: reason
    "job_ended",  # terminal: state (submitted, faulted, dropped...), reward, images, slot and timings
    "child_started",  # child, pid
    "child_lost",  # child, reason
    "child_killed",  # child, reason (a watchdog fired)
    "child_recycled",  # child, reason
    "subject_withdrawn",  # the fault breaker withdrew a model or feature: subject, reason
    "bridge_level",  # the capability level claimed, decided at start or changed: level, agent, kudos_factor, reason
    # The dashboard's history (every 30 s): t (unix seconds), each series' value, slots (each slot's duty).
    "history_sample",
    # Alchemy: `job` is the form's id.
    "alchemy_pop_answered",  # the horde answered an interrogation pop: seconds, forms (how many), refused
    "form_popped",  # form, lane
    "form_started",  # sent to its child: form, lane, child
    "form_done",  # its child answered: form, ok, seconds (on the child), error
    "form_faulted",  # to be reported faulted (once): form, reason
    "form_ended",  # terminal: state (submitted, faulted, dropped), form, reward, reason
]

DEFAULT_KEPT = 10_000  # records kept in memory; a worker serving for weeks must not grow
# Every record's own keys: a field of the same name would hide the stamp or the job, so it is left out.
RESERVED = frozenset({"kind", "at", "job"})


@dataclass(frozen=True, slots=True)
class Event:
    """One record of the log."""

    kind: EventKind
    at: float  # time.monotonic() of the main process
    job: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The record as one JSON object (`kind`, `at`, `job` when set, then the fields)."""
        record: dict[str, Any] = {"kind": self.kind, "at": self.at}
        if self.job is not None:
            record["job"] = self.job
        record.update((name, value) for name, value in self.fields.items() if name not in RESERVED)
        return record


Sink = Callable[[Event], None]


class EventLog:
    """Keeps the latest records in memory and hands each new one to its sinks (a JSON-lines file)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, kept: int = DEFAULT_KEPT) -> None:
        self._clock = clock
        self._records: deque[Event] = deque(maxlen=kept)
        self._sinks: list[Sink] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    def emit(self, kind: EventKind, job: str | None = None, **fields: Any) -> Event:
        """Record an event now. Never raises for a sink's sake: emitters are in the middle of a job's change."""
        event = Event(kind, self._clock(), job, fields)
        self._records.append(event)
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception as error:  # a broken sink loses its records, never the worker's state
                self._sinks.remove(sink)
                logger.warning(f"The event log stopped feeding {sink!r} after it failed on a {kind} record: {error!r}")
        self._wake(event)
        return event

    def add_sink(self, sink: Sink) -> None:
        """Hand every later record to `sink` too (called on the event loop; it must not block for long).

        A sink that raises is removed (and that is logged once): it should handle its own failures.
        """
        self._sinks.append(sink)

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._records))

    def of_kind(self, *kinds: EventKind) -> list[Event]:
        """The records kept, of these kinds, oldest first."""
        return [event for event in self._records if event.kind in kinds]

    def of_job(self, job: str) -> list[Event]:
        """The records kept of one job, oldest first."""
        return [event for event in self._records if event.job == job]

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """The first record (kept or to come) that satisfies `predicate`; TimeoutError after `timeout` s."""
        for event in self._records:
            if predicate(event):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self, event: Event) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(event):
                future.set_result(event)
