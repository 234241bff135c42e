"""The inference slots over in-process children: start, loss and replacement, recycling, give-up, shutdown."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
import pytest_asyncio

from horde_worker_regen.models.post_processor_files import MANAGED_POST_PROCESSORS
from horde_worker_regen.pipeline.lifecycle import ChildState, IllegalTransition, SlotState
from horde_worker_regen.pipeline.slots import SlotPool
from horde_worker_regen.processes.handle import ChildStartError
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.processes.messages import Preload
from tests.pipeline_parts.children import WAIT_S, inference_specs, sent_to, started

SPECS = inference_specs(2)
EXITED = "it exited with code 1"  # how a child that fails to start says so here

pytestmark = pytest.mark.usefixtures("no_backoff")

StartedPool = Callable[[], Awaitable[SlotPool]]


@pytest_asyncio.fixture
async def started_pool(children: InProcessChildren) -> AsyncIterator[StartedPool]:
    """Starts pools over `children`; at the end no replacement is left under way (the children are killed)."""
    pools: list[SlotPool] = []

    async def start() -> SlotPool:
        pools.append(SlotPool(children, SPECS))
        await pools[-1].start_all()
        return pools[-1]

    yield start
    for pool in pools:
        pool.stop_all()


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


async def test_every_slot_starts_idle_with_its_child_ready(children: InProcessChildren) -> None:
    pool = SlotPool(children, SPECS)
    names: list[str] = []
    assert pool.all_down()  # nothing started yet
    await pool.start_all(names.append)
    assert sorted(names) == ["inference-1", "inference-2"] and pool.idle_indexes() == [0, 1]
    assert [(slot.state, slot.seat.state) for slot in pool.slots] == [(SlotState.IDLE, ChildState.READY)] * 2
    assert all(slot.handle is not None and slot.ready is slot.handle.ready.result() for slot in pool.slots)
    assert [slot.ready.pid for slot in pool.slots if slot.ready] == [os.getpid()] * 2  # as each child said
    pool.stop_all()


async def test_a_child_that_fails_its_first_start_fails_the_start_and_its_slot_is_out_of_service(
    children: InProcessChildren,
) -> None:
    children.fail_next_starts(1, EXITED)
    pool = SlotPool(children, SPECS)
    with pytest.raises(ChildStartError, match=EXITED):
        await pool.start_all()
    assert sorted(slot.state.value for slot in pool.slots) == ["idle", "out_of_service"]


async def test_a_lost_child_is_replaced_and_its_slot_takes_jobs_again_holding_no_model(
    children: InProcessChildren, started_pool: StartedPool
) -> None:
    pool = await started_pool()
    slot = pool.slots[0]
    slot.take("job-1", "Deliberate")
    lost = slot.handle
    assert lost is not None
    children.kill(lost)  # as the client does to a child it lost, before it tells
    outcome = Outcome()
    assert pool.child_gone(slot, outcome.on_ready, outcome.on_give_up) == "job-1"
    assert (slot.state, slot.handle, slot.job_key, slot.model) == (SlotState.REPLACING, None, None, None)
    assert not pool.all_down() and pool.idle_indexes() == [1]
    await asyncio.wait_for(outcome.ready, WAIT_S)
    assert slot.state is SlotState.IDLE and slot.handle is await started(children, "inference-1#3")
    assert slot.jobs_run == 0 and slot.handle.incarnation == 3


async def test_a_slot_whose_replacements_keep_failing_goes_out_of_service(
    children: InProcessChildren, started_pool: StartedPool
) -> None:
    pool = await started_pool()
    children.fail_next_starts(3, EXITED)
    outcome = Outcome()
    pool.child_gone(pool.slots[0], outcome.on_ready, outcome.on_give_up)
    reason = await asyncio.wait_for(outcome.gave_up, WAIT_S)
    assert reason.startswith("Inference slot 0 is out of service: its process failed to start 3 times in a row")
    assert f"(last: inference-1#5: RuntimeError: {EXITED}). See logs/bridge_1.log" in reason
    assert (pool.slots[0].state, pool.slots[0].seat.state) == (SlotState.OUT_OF_SERVICE, ChildState.FAILED)
    assert not pool.all_out_of_service() and not outcome.ready.done()
    pool.child_gone(pool.slots[1], outcome.on_ready, lambda reason: None)
    assert not pool.all_down()  # the second slot's replacement is starting


async def test_with_restarts_off_a_lost_child_leaves_its_slot_down(started_pool: StartedPool) -> None:
    pool = await started_pool()
    pool.stop_restarting()
    for slot in pool.slots:
        pool.child_gone(slot, lambda: None, lambda reason: None)
    assert [slot.state for slot in pool.slots] == [SlotState.DOWN] * 2 and pool.all_down()
    assert [slot.seat.state for slot in pool.slots] == [ChildState.STOPPED] * 2


@pytest.mark.parametrize("model", ["Deliberate", None])
async def test_a_recycled_slot_stops_its_child_and_preloads_the_model_it_held(
    model: str | None, children: InProcessChildren, started_pool: StartedPool
) -> None:
    pool = await started_pool()
    slot = pool.slots[0]
    old, slot.model, slot.jobs_run = slot.handle, model, 5
    assert old is not None
    outcome = Outcome()
    pool.recycle(slot, "it has run 5 jobs", outcome.on_ready, outcome.on_give_up)
    assert (slot.state, slot.seat.state) == (SlotState.REPLACING, ChildState.STOPPING)
    await asyncio.wait_for(outcome.ready, WAIT_S)
    assert old.process.exitcode == 0 and old not in children.children  # asked to stop, and it exited cleanly
    assert slot.handle is not None and slot.handle is not old and slot.jobs_run == 0
    preloads = [(name, message.model) for name, message in sent_to(children, Preload)]
    if model is None:
        assert (slot.state, preloads) == (SlotState.IDLE, [])
        return
    assert (slot.state, slot.model, slot.idle) == (SlotState.PRELOADING, model, False)
    assert preloads == [(slot.handle.name, model)]
    slot.preloaded(failed=False)
    assert slot.idle and slot.model == model


async def test_a_failed_preload_leaves_the_slot_idle_holding_no_model(started_pool: StartedPool) -> None:
    pool = await started_pool()
    slot = pool.slots[0]
    slot.model = "Deliberate"
    outcome = Outcome()
    pool.recycle(slot, "its memory is 9000 MiB", outcome.on_ready, outcome.on_give_up)
    await asyncio.wait_for(outcome.ready, WAIT_S)
    slot.preloaded(failed=True)
    assert slot.idle and slot.model is None


async def test_shutdown_cancels_a_replacement_under_way_and_its_slot_is_down(
    children: InProcessChildren, started_pool: StartedPool
) -> None:
    pool = await started_pool()
    children.hold_starts()  # the replacement's child does not come up until released
    outcome = Outcome()
    pool.child_gone(pool.slots[0], outcome.on_ready, outcome.on_give_up)
    replacement = await asyncio.wait_for(children.held_start(), WAIT_S)
    assert pool.slots[0].seat.restarting
    pool.stop_restarting()
    assert (pool.slots[0].state, pool.slots[0].seat.restarting) == (SlotState.DOWN, False)
    assert pool.slots[1].state is SlotState.IDLE  # a child that is up stays up until it is stopped
    await asyncio.wait_for(replacement.exited.wait(), WAIT_S)  # the cancelled start ended its child
    assert children.release_starts() == [] and not outcome.ready.done() and not outcome.gave_up.done()


async def test_abort_takes_every_slot_down_and_forgets_its_job(started_pool: StartedPool) -> None:
    pool = await started_pool()
    pool.slots[0].take("job-1", "Deliberate")
    pool.stop_all()
    assert [(slot.state, slot.job_key, slot.handle) for slot in pool.slots] == [(SlotState.DOWN, None, None)] * 2
    assert pool.all_down()


async def test_a_slot_refuses_a_job_unless_it_is_idle(started_pool: StartedPool) -> None:
    pool = await started_pool()
    slot = pool.slots[0]
    slot.take("job-1", "Deliberate")
    with pytest.raises(IllegalTransition, match="slot 0: busy -> busy"):
        slot.take("job-2", "Deliberate")
    pool.child_gone(slot, lambda: None, lambda reason: None)
    with pytest.raises(IllegalTransition, match="slot 0: replacing -> busy"):
        slot.take("job-2", "Deliberate")


async def test_the_servable_managed_post_processors_are_what_every_ready_child_reported(
    children: InProcessChildren, started_pool: StartedPool
) -> None:
    assert SlotPool(children, SPECS).servable_post_processors() is None  # no child came up yet
    pool = await started_pool()
    assert pool.servable_post_processors() == MANAGED_POST_PROCESSORS  # the fake passes all nine through
    first = pool.slots[0]
    assert first.ready is not None
    first.ready = replace(first.ready, post_processors=("4xNomos8kSC", "RestoreFormer"))
    assert pool.servable_post_processors() == frozenset({"4xNomos8kSC", "RestoreFormer"})  # what both can run
    children.fail_next_starts(3, EXITED)
    outcome = Outcome()
    pool.child_gone(first, outcome.on_ready, outcome.on_give_up)
    assert pool.servable_post_processors() == frozenset(
        {"4xNomos8kSC", "RestoreFormer"}
    )  # its replacement runs the same
    await asyncio.wait_for(outcome.gave_up, WAIT_S)
    assert pool.servable_post_processors() == MANAGED_POST_PROCESSORS  # out of service: it has no say
