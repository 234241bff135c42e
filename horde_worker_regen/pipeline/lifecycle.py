"""The lifecycles of an inference slot and of a child the pipeline keeps running, with their allowed moves.

An inference slot (one per inference process the worker runs):

    DOWN -> STARTING                              its first child is being started
    STARTING -> IDLE | OUT_OF_SERVICE             it came up, or did not
    IDLE -> BUSY -> IDLE                          a job sent to its child; the job's result back
    IDLE | BUSY | PRELOADING -> REPLACING         its child lost or killed (or, between jobs, recycled)
    REPLACING -> IDLE | PRELOADING                a new child is up (first reloading a recycled one's model)
    PRELOADING -> IDLE                            the model is loaded (or failed to load)
    REPLACING -> OUT_OF_SERVICE                   no new child came up: given up until the worker restarts
    any state but OUT_OF_SERVICE -> DOWN          shutdown: no child, none coming

A child, as the slot (or the safety link) it serves sees it:

    STOPPED -> STARTING -> READY                  started, and up
    STARTING -> FAILED                            it could not be started: given up
    READY -> LOST -> STARTING                     it died, went silent or was killed; a new one starts
    READY -> STOPPING -> STARTING                 recycled: stopped on purpose, a new one starts
    any state but FAILED -> STOPPED               shutdown: no replacement

Every move goes through `move`, which refuses one its table does not list: a slot that is not idle
cannot take a job, and a lost child cannot serve again without being started anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar


class SlotState(Enum):
    """Where an inference slot is in its lifecycle."""

    DOWN = "down"  # no child and none starting (not started yet, or shut down)
    STARTING = "starting"  # its first child is starting
    IDLE = "idle"  # its child is up and holds no job
    BUSY = "busy"  # its child runs a job
    PRELOADING = "preloading"  # its fresh child loads the model the recycled one held
    REPLACING = "replacing"  # its child was lost, killed or recycled; a new one is starting
    OUT_OF_SERVICE = "out_of_service"  # its process kept failing to start: given up until restart


SLOT_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    SlotState.DOWN: frozenset({SlotState.STARTING}),
    SlotState.STARTING: frozenset({SlotState.IDLE, SlotState.OUT_OF_SERVICE, SlotState.DOWN}),
    SlotState.IDLE: frozenset({SlotState.BUSY, SlotState.REPLACING, SlotState.DOWN}),
    SlotState.BUSY: frozenset({SlotState.IDLE, SlotState.REPLACING, SlotState.DOWN}),
    SlotState.PRELOADING: frozenset({SlotState.IDLE, SlotState.REPLACING, SlotState.DOWN}),
    SlotState.REPLACING: frozenset({SlotState.IDLE, SlotState.PRELOADING, SlotState.OUT_OF_SERVICE, SlotState.DOWN}),
    SlotState.OUT_OF_SERVICE: frozenset(),
}


class ChildState(Enum):
    """Where a child the pipeline keeps running is in its lifecycle."""

    STARTING = "starting"  # being started (the first time, or again after a loss or a recycle)
    READY = "ready"  # up: takes work
    STOPPING = "stopping"  # asked to exit (recycled); a new one starts once it has gone
    LOST = "lost"  # died, went silent, or was killed by a watchdog
    FAILED = "failed"  # could not be started: given up
    STOPPED = "stopped"  # no child: not started yet, or shut down (no replacement)


CHILD_TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    ChildState.STARTING: frozenset({ChildState.READY, ChildState.FAILED, ChildState.STOPPED}),
    ChildState.READY: frozenset({ChildState.STOPPING, ChildState.LOST, ChildState.STOPPED}),
    ChildState.STOPPING: frozenset({ChildState.STARTING, ChildState.STOPPED}),
    ChildState.LOST: frozenset({ChildState.STARTING, ChildState.STOPPED}),
    ChildState.FAILED: frozenset(),
    ChildState.STOPPED: frozenset({ChildState.STARTING}),
}


class IllegalTransition(RuntimeError):
    """A lifecycle move its table does not allow (a bug in the caller, never a runtime condition)."""


State = TypeVar("State", SlotState, ChildState)


def move(table: Mapping[State, frozenset[State]], current: State, new: State, what: str) -> State:
    """`new` if the table allows `current -> new`; IllegalTransition (naming `what`) otherwise."""
    if new not in table[current]:
        raise IllegalTransition(f"{what}: {current.value} -> {new.value} is not an allowed move")
    return new
