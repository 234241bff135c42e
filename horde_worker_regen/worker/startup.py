"""Starting the worker's children: the safety child while the GPUs are found, then one inference child
per slot, each step able to stop cleanly when a stop comes first (a partial start is undone).
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.discovery import DeviceInfo
from horde_worker_regen.devices.model_sizes import model_sizes
from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.models.progress import StepProgress
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.processes.handle import ChildStartError
from horde_worker_regen.worker.children import WorkerChildren, plan_devices

ABORT_GRACE_S = 5.0  # seconds the reports in flight get when the worker aborts


async def first_of(task: asyncio.Future[Any], event: asyncio.Event) -> None:
    """Wait until `task` is done or `event` is set, whichever comes first (neither is cancelled)."""
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


class ChildStartup:
    """Plans the slots on the machine's devices and starts every child of the pipeline."""

    def __init__(
        self,
        data: BridgeData,
        models: list[str],
        devices: list[DeviceInfo] | None,
        children: WorkerChildren,
        stop: asyncio.Event,
    ) -> None:
        self._data = data
        self._models = models
        self._devices = devices  # the GPUs the start-up checks already found, if they had to look
        self._children = children
        self._stop = stop
        self.plans: list[SlotPlan] = []
        self.failed = False  # the worker cannot start here (said why); a stop is no failure

    async def start(self, pipeline: Pipeline) -> bool:
        """Start the children unless a stop comes first; False (with every child stopped) if they did not all
        come up, after saying why."""
        starting = asyncio.create_task(self._start_all(pipeline), name="children start")
        await first_of(starting, self._stop)
        if starting.done():
            started = starting.result()
        else:
            starting.cancel()  # the supervisor kills a child it was starting
            await asyncio.gather(starting, return_exceptions=True)
            logger.info("Stopped while the child processes were starting")
            started = False
        if not started:
            await pipeline.abort(ABORT_GRACE_S)  # resumed reports get a few seconds; the spool keeps the rest
        return started

    async def _start_all(self, pipeline: Pipeline) -> bool:
        """The safety child starts while the GPUs are found (a probe takes seconds); then the inference slots."""
        logger.info(f"Starting the safety process ({self._data.safety_backend}) and finding the GPUs")
        safety = asyncio.create_task(pipeline.start_safety(), name="safety start")
        try:
            planned = await self._start_after_safety(pipeline, safety)
        except asyncio.CancelledError:  # a stop: the safety start must end with it, whatever step was under way
            safety.cancel()
            await asyncio.gather(safety, return_exceptions=True)
            raise
        self.failed = not planned
        return planned

    async def _start_after_safety(self, pipeline: Pipeline, safety: asyncio.Task[None]) -> bool:
        planned = await self._plan_devices()
        if planned:
            pipeline.use_inference(
                self._children.inference_specs(self.plans),
                DevicePlacer(self.plans, model_sizes(self._data, self._models)),
            )
            logger.info(f"Starting {len(self.plans)} inference process(es) ({self._data.inference_backend})")
        try:
            if not planned:
                await safety  # stopped below with the rest
            else:
                progress = StepProgress("Starting processes", len(self.plans) + 1)
                await safety
                progress.advance("safety")
                await pipeline.slots.start_all(progress.advance)
        except ChildStartError as error:
            logger.error(f"Cannot start: a child process failed to start: {error}")
            planned = False
        return planned

    async def _plan_devices(self) -> bool:
        """Decide the slots per GPU; False (after saying why) when the GPU settings do not fit this machine."""
        plans = await plan_devices(self._data, self._models, self._devices)
        if plans is None:
            return False
        self.plans = plans
        return True
