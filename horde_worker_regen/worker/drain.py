"""The end of serving: no more pops, then the jobs and forms in flight finish, or an abort faults them.

A first stop lets everything already taken finish and be submitted; a second (the abort event) cuts
every wait short and faults what is left, with `ABORT_GRACE_S` for the reports to go out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from loguru import logger

from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.popper import Popper
from horde_worker_regen.worker.alchemy_wiring import AlchemyService
from horde_worker_regen.worker.startup import ABORT_GRACE_S, first_of


async def drain(
    popper: Popper,
    popper_task: asyncio.Task[None],
    pipeline: Pipeline,
    alchemy: AlchemyService | None,
    abort: asyncio.Event,
) -> None:
    """A stop: no more pops; finish the jobs and forms in flight, or (an abort) fault what is left."""
    popper.stop()
    if alchemy is not None:
        alchemy.alchemist.stop()
    await unless_aborted(popper_task, abort)
    if abort.is_set():
        popper_task.cancel()  # a pop still under way would only add a job to fault
        await asyncio.gather(popper_task, return_exceptions=True)
    else:
        in_flight = len(pipeline.registry)
        if in_flight:
            logger.info(f"Finishing {in_flight} job(s) in flight")
        await unless_aborted(pipeline.registry.wait_empty(), abort)
        if alchemy is not None:
            await unless_aborted(alchemy.drain(), abort)
    if abort.is_set():
        forms = alchemy.abort(ABORT_GRACE_S) if alchemy is not None else asyncio.sleep(0)
        await asyncio.gather(forms, pipeline.abort(ABORT_GRACE_S))


async def unless_aborted(awaitable: Awaitable[Any], abort: asyncio.Event) -> None:
    """Wait for `awaitable`, or until an abort is requested (then a coroutine of ours is cancelled)."""
    main = asyncio.ensure_future(awaitable)
    await first_of(main, abort)
    if not main.done() and main is not awaitable:
        main.cancel()
