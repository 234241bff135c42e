"""The slot and child lifecycles: every state has its row, the allowed moves pass, the others are refused."""

from __future__ import annotations

import pytest

from horde_worker_regen.pipeline.lifecycle import (
    CHILD_TRANSITIONS,
    SLOT_TRANSITIONS,
    ChildState,
    IllegalTransition,
    SlotState,
    move,
)

S, C = SlotState, ChildState


def test_every_state_has_its_row_of_moves() -> None:
    assert set(SLOT_TRANSITIONS) == set(SlotState)
    assert set(CHILD_TRANSITIONS) == set(ChildState)


@pytest.mark.parametrize(
    "path",
    [
        (S.DOWN, S.STARTING, S.IDLE, S.BUSY, S.IDLE, S.BUSY, S.IDLE),  # jobs, one after the other
        (S.IDLE, S.BUSY, S.REPLACING, S.IDLE),  # its child lost mid-job, replaced
        (S.IDLE, S.REPLACING, S.PRELOADING, S.IDLE),  # recycled between jobs, its model preloaded
        (S.PRELOADING, S.REPLACING, S.OUT_OF_SERVICE),  # the preload hung; no replacement came up
        (S.STARTING, S.OUT_OF_SERVICE),  # the first child failed to start
        (S.BUSY, S.DOWN),  # abort
        (S.REPLACING, S.DOWN),  # shutdown while a replacement starts
    ],
)
def test_the_slot_paths_the_pipeline_takes(path: tuple[SlotState, ...]) -> None:
    state = path[0]
    for new in path[1:]:
        state = move(SLOT_TRANSITIONS, state, new, "slot 0")
    assert state is path[-1]


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.DOWN, S.IDLE),  # a slot takes jobs only once its child has started
        (S.STARTING, S.BUSY),
        (S.REPLACING, S.BUSY),  # no job for a child that is not up
        (S.PRELOADING, S.BUSY),  # nor for one still loading its model
        (S.BUSY, S.BUSY),  # one job at a time
        (S.BUSY, S.PRELOADING),
        (S.OUT_OF_SERVICE, S.STARTING),  # given up until the worker restarts
        (S.OUT_OF_SERVICE, S.DOWN),
        (S.DOWN, S.REPLACING),
    ],
)
def test_a_slot_move_the_table_does_not_list_is_refused(current: SlotState, new: SlotState) -> None:
    with pytest.raises(IllegalTransition, match=f"slot 3: {current.value} -> {new.value}"):
        move(SLOT_TRANSITIONS, current, new, "slot 3")


@pytest.mark.parametrize(
    "path",
    [
        (C.STOPPED, C.STARTING, C.READY, C.LOST, C.STARTING, C.READY),  # lost and replaced
        (C.READY, C.STOPPING, C.STARTING, C.READY),  # recycled
        (C.LOST, C.STARTING, C.FAILED),  # its replacement never came up
        (C.READY, C.LOST, C.STOPPED),  # lost while shutting down: not replaced
        (C.STARTING, C.STOPPED),  # shutdown while it starts
    ],
)
def test_the_child_paths_the_pipeline_takes(path: tuple[ChildState, ...]) -> None:
    state = path[0]
    for new in path[1:]:
        state = move(CHILD_TRANSITIONS, state, new, "safety")
    assert state is path[-1]


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (C.LOST, C.READY),  # a lost child serves again only as a new one, started
        (C.STOPPING, C.READY),
        (C.STOPPED, C.READY),
        (C.FAILED, C.STARTING),  # given up
        (C.FAILED, C.STOPPED),
        (C.READY, C.STARTING),
        (C.STARTING, C.LOST),  # a child is lost only once it was up (a failed start is a failure)
    ],
)
def test_a_child_move_the_table_does_not_list_is_refused(current: ChildState, new: ChildState) -> None:
    with pytest.raises(IllegalTransition):
        move(CHILD_TRANSITIONS, current, new, "inference-1")
