"""The worker's child processes as specs: the safety child, and the inference slots planned on the GPUs.

The slots depend on the GPUs found (a probe in a short-lived child, unless the start-up checks already
found them), so the safety child's spec is ready at once and the inference specs only after planning.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.devices.discovery import DeviceInfo, discover_devices, fake_devices
from horde_worker_regen.devices.plan import SlotPlan, plan_slots
from horde_worker_regen.inference.hordelib_settings import HordelibSettings
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildSpec
from horde_worker_regen.processes.inference_child import InferenceChildConfig, inference_main
from horde_worker_regen.processes.safety_child import SafetyChildConfig, safety_main


@dataclass(frozen=True)
class WorkerChildren:
    """Builds the child specs of one worker run."""

    data: BridgeData
    logs_dir: Path
    verbosity: int
    console: bool = True  # False while the terminal UI owns the terminal

    def _logging(self, index: int) -> ChildLogging:
        return ChildLogging(
            self.logs_dir.resolve(), self.verbosity, index, tuple(self.data.secrets()), console=self.console
        )

    def safety_spec(self) -> ChildSpec:
        """The safety child."""
        return ChildSpec("safety", safety_main, SafetyChildConfig.from_bridge_data(self._logging(0), self.data))

    def inference_specs(self, plans: list[SlotPlan]) -> list[ChildSpec]:
        """One inference child per planned slot, pinned to its GPU."""
        inference = []
        for n, plan in enumerate(plans, start=1):
            device = plan.device.index if plan.device is not None else None
            inference.append(
                ChildSpec(
                    f"inference-{n}",
                    inference_main,
                    InferenceChildConfig(
                        self._logging(n),
                        self.data.inference_backend,
                        self.data.fake_backend,
                        HordelibSettings.from_bridge_data(self.data, n, device),
                        device,
                    ),
                )
            )
        return inference


async def find_devices(data: BridgeData, known: list[DeviceInfo] | None) -> list[DeviceInfo]:
    """The GPUs already found (`known`); else the fake backend's simulated ones, or the real ones (asked
    in a short-lived child)."""
    if known is not None:
        return known
    if data.inference_backend == "fake":
        return fake_devices(data.fake_backend)
    return await asyncio.to_thread(discover_devices)


async def plan_devices(data: BridgeData, models: list[str], known: list[DeviceInfo] | None) -> list[SlotPlan] | None:
    """The slots per GPU; None (after saying why) when the GPU settings do not fit this machine."""
    devices = await find_devices(data, known)
    try:
        plans = plan_slots(data, devices, models)
    except ConfigError as error:
        logger.error(f"Cannot start: {error}")
        return None
    for device in devices:
        threads = sum(1 for plan in plans if plan.device == device)
        if threads:
            logger.info(f"{device.describe()}: {threads} inference process(es)")
    if not devices:
        logger.info("No GPU found: inference runs on the CPU")
    return plans
