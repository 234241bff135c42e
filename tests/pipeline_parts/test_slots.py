"""The inference slots over a fake child client: start, loss and replacement, recycling, give-up, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from horde_worker_regen.pipeline.lifecycle import ChildState, IllegalTransition, SlotState
from horde_worker_regen.pipeline.slots import SlotPool
from horde_worker_regen.processes import restarts
from horde_worker_regen.processes.messages import Preload
from horde_worker_regen.processes.supervisor import ChildSpec, ChildStartError
from tests.pipeline_parts.fakes import FakeChildren

SPECS = [ChildSpec("inference-1", print, None), ChildSpec("inference-2", print, None)]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restart attempts follow each other at once: what is tested is the give-up, not the pacing."""
    monkeypatch.setattr(restarts, "RESTART_BACKOFF_BASE_S", 0.0)


async def started_pool(children: FakeChildren) -> SlotPool:
    pool = SlotPool(children, SPECS)
    await pool.start_all()
    return pool


class Outcome:
    """The callbacks a replacement reports to, as futures a test can await."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.gave_up: asyncio.Future[str] = loop.create_future()

    def on_ready(self) -> None:
        self.ready.set_result(None)

    def on_give_up(self, reason: str) -> None:
        self.gave_up.set_result(reason)


async def test_every_slot_starts_idle_with_its_child_ready() -> None:
    children = FakeChildren()
    pool = SlotPool(children, SPECS)
    names: list[str] = []
    assert pool.all_down()  # nothing started yet
    await pool.start_all(names.append)
    assert sorted(names) == ["inference-1", "inference-2"] and pool.idle_indexes() == [0, 1]
    assert [(slot.state, slot.seat.state) for slot in pool.slots] == [(SlotState.IDLE, ChildState.READY)] * 2
    assert [slot.ready.pid for slot in pool.slots if slot.ready] == [1001, 1002]


async def test_a_child_that_fails_its_first_start_fails_the_start_and_its_slot_is_out_of_service() -> None:
    children = FakeChildren(failing_starts=1)
    pool = SlotPool(children, SPECS)
    with pytest.raises(ChildStartError, match="it exited with code 1"):
        await pool.start_all()
    assert sorted(slot.state.value for slot in pool.slots) == ["idle", "out_of_service"]


async def test_a_lost_child_is_replaced_and_its_slot_takes_jobs_again_holding_no_model() -> None:
    children = FakeChildren()
    pool = await started_pool(children)
    slot = pool.slots[0]
    slot.take("job-1", "Deliberate")
    outcome = Outcome()
    assert pool.child_gone(slot, outcome.on_ready, outcome.on_give_up) == "job-1"
    assert (slot.state, slot.handle, slot.job_key, slot.model) == (SlotState.REPLACING, None, None, None)
    assert not pool.all_down() and pool.idle_indexes() == [1]
    await asyncio.wait_for(outcome.ready, 5)
    assert slot.state is SlotState.IDLE and slot.handle is children.started[-1] and slot.jobs_run == 0
    assert slot.handle.incarnation == 3


async def test_a_slot_whose_replacements_keep_failing_goes_out_of_service() -> None:
    children = FakeChildren()
    pool = await started_pool(children)
    children.failing_starts = 3
    outcome = Outcome()
    pool.child_gone(pool.slots[0], outcome.on_ready, outcome.on_give_up)
    reason = await asyncio.wait_for(outcome.gave_up, 5)
    assert reason.startswith("Inference slot 0 is out of service: its process failed to start 3 times in a row")
    assert "(last: inference-1#5: it exited with code 1). See logs/bridge_1.log" in reason
    assert (pool.slots[0].state, pool.slots[0].seat.state) == (SlotState.OUT_OF_SERVICE, ChildState.FAILED)
    assert not pool.all_out_of_service() and not outcome.ready.done()
    pool.child_gone(pool.slots[1], outcome.on_ready, lambda reason: None)
    assert not pool.all_down()  # the second slot's replacement is starting


async def test_with_restarts_off_a_lost_child_leaves_its_slot_down() -> None:
    pool = await started_pool(FakeChildren())
    pool.stop_restarting()
    for slot in pool.slots:
        pool.child_gone(slot, lambda: None, lambda reason: None)
    assert [slot.state for slot in pool.slots] == [SlotState.DOWN] * 2 and pool.all_down()
    assert [slot.seat.state for slot in pool.slots] == [ChildState.STOPPED] * 2


@pytest.mark.parametrize("model", ["Deliberate", None])
async def test_a_recycled_slot_stops_its_child_and_preloads_the_model_it_held(model: str | None) -> None:
    children = FakeChildren()
    pool = await started_pool(children)
    slot = pool.slots[0]
    old, slot.model, slot.jobs_run = slot.handle, model, 5
    outcome = Outcome()
    pool.recycle(slot, "it has run 5 jobs", outcome.on_ready, outcome.on_give_up)
    assert (slot.state, slot.seat.state) == (SlotState.REPLACING, ChildState.STOPPING)
    await asyncio.wait_for(outcome.ready, 5)
    assert children.stopped == [old] and slot.handle is not old and slot.jobs_run == 0
    preloads = [(handle, message.model) for handle, message in children.of_type(Preload)]
    if model is None:
        assert (slot.state, preloads) == (SlotState.IDLE, [])
        return
    assert (slot.state, slot.model, slot.idle) == (SlotState.PRELOADING, model, False)
    assert preloads == [(slot.handle, model)]
    slot.preloaded(failed=False)
    assert slot.idle and slot.model == model


async def test_a_failed_preload_leaves_the_slot_idle_holding_no_model() -> None:
    pool = await started_pool(FakeChildren())
    slot = pool.slots[0]
    slot.model = "Deliberate"
    outcome = Outcome()
    pool.recycle(slot, "its memory is 9000 MiB", outcome.on_ready, outcome.on_give_up)
    await asyncio.wait_for(outcome.ready, 5)
    slot.preloaded(failed=True)
    assert slot.idle and slot.model is None


async def test_shutdown_cancels_a_replacement_under_way_and_its_slot_is_down() -> None:
    children = FakeChildren()
    pool = await started_pool(children)
    children.hold_starts = asyncio.Event()  # the replacement's start waits
    outcome = Outcome()
    pool.child_gone(pool.slots[0], outcome.on_ready, outcome.on_give_up)
    assert pool.slots[0].seat.restarting
    pool.stop_restarting()
    assert (pool.slots[0].state, pool.slots[0].seat.restarting) == (SlotState.DOWN, False)
    assert pool.slots[1].state is SlotState.IDLE  # a child that is up stays up until it is stopped
    children.hold_starts.set()
    assert len(children.started) == 2 and not outcome.ready.done() and not outcome.gave_up.done()


async def test_abort_takes_every_slot_down_and_forgets_its_job() -> None:
    pool = await started_pool(FakeChildren())
    pool.slots[0].take("job-1", "Deliberate")
    pool.stop_all()
    assert [(slot.state, slot.job_key, slot.handle) for slot in pool.slots] == [(SlotState.DOWN, None, None)] * 2
    assert pool.all_down()


async def test_a_slot_refuses_a_job_unless_it_is_idle() -> None:
    pool = await started_pool(FakeChildren())
    slot = pool.slots[0]
    slot.take("job-1", "Deliberate")
    with pytest.raises(IllegalTransition, match="slot 0: busy -> busy"):
        slot.take("job-2", "Deliberate")
    pool.child_gone(slot, lambda: None, lambda reason: None)
    with pytest.raises(IllegalTransition, match="slot 0: replacing -> busy"):
        slot.take("job-2", "Deliberate")
