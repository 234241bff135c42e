"""What the operator's views read beside the pipeline: the telemetry sampler and the horde's word on this worker.

Both run as background tasks while the worker serves and never stop it: the sampler reads NVML and
psutil in a thread every `telemetry_interval` seconds, the identity watch asks the horde for its
version (and this worker's id) as serving begins and every 10 minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.telemetry import NvmlLibrary, load_nvml
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.worker.telemetry_sampler import TelemetrySampler

NvmlSource = Callable[[], NvmlLibrary | str]


@dataclass
class OperatorView:
    """The live telemetry and identity, and the tasks that keep them current."""

    telemetry: Telemetry
    horde_identity: HordeIdentityWatch
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        data: BridgeData,
        client: HordeClient,
        nvml: NvmlSource = load_nvml,
        used_gpus: frozenset[int] = frozenset(),
    ) -> OperatorView:
        """Start sampling and reading the horde's version (in the background: neither holds up serving);
        `used_gpus` are the GPUs this worker's slots run on, the ones whose energy counts."""
        telemetry = Telemetry(used_gpus=used_gpus)
        sampler = TelemetrySampler(telemetry, data.telemetry_interval, nvml=nvml)
        name = data.dreamer_name if data.dreamer else data.alchemist_name
        identity = HordeIdentityWatch(client, name)
        view = cls(telemetry, identity)
        view._tasks.append(asyncio.create_task(sampler.run(), name="telemetry"))
        view._tasks.append(asyncio.create_task(identity.run(), name="horde identity"))
        for task in view._tasks:
            task.add_done_callback(_ended)
        return view

    async def stop(self) -> None:
        """End both tasks (the sampler lets NVML go)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _ended(task: asyncio.Task[None]) -> None:
    """A view's task ends only when cancelled; an error it did not expect is logged (the worker serves on)."""
    if not task.cancelled() and task.exception() is not None:
        logger.opt(exception=task.exception()).warning(
            f"The {task.get_name()} task stopped; its figures stay as they were"
        )
