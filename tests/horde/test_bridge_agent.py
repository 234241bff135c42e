"""The agent the popper reports decides what the horde hands out and how it pays: the local horde's level-13
rules against the worker's real popper and pipeline (the fake backends, in this process)."""

from __future__ import annotations

import contextlib
import time

from horde_worker_regen.horde.pop import bridge_agent
from horde_worker_regen.jobs.events import Event
from tests.horde.inprocess_worker import WORKER_NAME, start_worker
from tests.worker_support import generations_of, queue

TIMEOUT = 20.0


async def test_a_level_13_post_processor_reaches_the_worker_only_once_its_agent_claims_13() -> None:
    async with contextlib.AsyncExitStack() as stack:
        worker = await start_worker(stack)
        assert worker.popper.bridge_agent == bridge_agent(1)
        request = queue(worker.horde, worker.requester, "a fox, upscaled", post_processing=["4xNomos8kSC"])
        queued_at = time.monotonic()

        empty_pops: list[Event] = []

        def second_empty_pop_after_queueing(event: Event) -> bool:
            if event.kind == "pop_answered" and event.job is None and event.at > queued_at:
                empty_pops.append(event)
            return len(empty_pops) >= 2

        # The second empty answer after the request was queued comes from a pop sent after it was: the horde
        # skips the request for a bridge below 13.
        await worker.pipeline.events.wait_for(second_empty_pop_after_queueing, TIMEOUT)
        assert generations_of(worker.horde, request) == []

        worker.popper.set_bridge_agent(bridge_agent(13))
        await worker.horde.wait_for_state(
            lambda: any(pg.is_completed for pg in generations_of(worker.horde, request)), TIMEOUT
        )
        [horde_worker] = [w for w in worker.horde.state.workers.values() if w.name == WORKER_NAME]
        assert horde_worker.bridge_agent == bridge_agent(13)
        [job] = generations_of(worker.horde, request)
        assert not job.faulted and horde_worker.kudos_generated == job.reward  # 1.0x: the latest level
