"""Which slots run on which GPU: the configured GPUs and per-GPU overrides applied to the GPUs found.

Bad choices stop the start with a message naming the key and what was found: a configured index with
no such GPU, a per-GPU model that is not served, a model whose GPUs all have a max_power below the
worker's. No GPU found and none configured: the CPU slots of
`max_threads`, as before multi-GPU support.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.devices.discovery import DeviceInfo

PIXELS_PER_POWER = 8 * 64 * 64


@dataclass(frozen=True)
class SlotPlan:
    """One inference slot: the GPU it is pinned to (None: the CPU) and what it may run."""

    device: DeviceInfo | None
    allowed_models: frozenset[str] | None = None
    max_pixels: int | None = None


def planned_gpus(plans: Sequence[SlotPlan]) -> frozenset[int]:
    """The indexes of the GPUs some slot runs on (none for a CPU worker)."""
    return frozenset(plan.device.index for plan in plans if plan.device is not None)


def _found(devices: Sequence[DeviceInfo]) -> str:
    return ", ".join(device.describe() for device in devices) or "none"


def plan_slots(data: BridgeData, devices: Sequence[DeviceInfo], served: Sequence[str]) -> list[SlotPlan]:
    """The slots to start, in order; ConfigError when the GPU settings do not match this machine."""
    if not devices:
        if data.gpu_device_indices is not None or data.gpu_device_overrides:
            raise ConfigError(
                [
                    f"gpu_device_indices / gpu_device_overrides name GPUs, but no GPU was found "
                    f"(indexes configured: {data.gpu_device_indices or list(data.gpu_device_overrides)}). "
                    "Remove them to run on the CPU."
                ]
            )
        return [SlotPlan(None) for _ in range(data.max_threads)]
    by_index = {device.index: device for device in devices}
    wanted = data.gpu_device_indices if data.gpu_device_indices is not None else sorted(by_index)
    problems = [
        f"gpu_device_indices: there is no GPU {index}; found: {_found(devices)}"
        for index in wanted
        if index not in by_index
    ]
    problems += [
        f"gpu_device_overrides: there is no GPU {index}; found: {_found(devices)}"
        for index in data.gpu_device_overrides
        if index not in by_index
    ]
    served_set = set(served)
    for index, settings in data.gpu_device_overrides.items():
        unknown = sorted(set(settings.models_to_load or ()) - served_set)
        if unknown:
            problems.append(
                f"gpu_device_overrides: GPU {index} models_to_load {unknown} are not among the served "
                f"models ({', '.join(sorted(served_set)[:10])})"
            )
    if problems:
        raise ConfigError(problems)
    plans = []
    for index in wanted:
        override = data.gpu_device_overrides.get(index)
        threads = data.max_threads if override is None or override.max_threads is None else override.max_threads
        models = None if override is None or override.models_to_load is None else frozenset(override.models_to_load)
        power = None if override is None or override.max_power is None else override.max_power
        plans += [SlotPlan(by_index[index], models, power * PIXELS_PER_POWER if power else None)] * threads
    _check_max_power(data, plans, served)
    return plans


def _check_max_power(data: BridgeData, plans: Sequence[SlotPlan], served: Sequence[str]) -> None:
    """Every offered model must run at the worker-wide max_power somewhere: the pop declares one max_pixels.

    A model allowed only on GPUs whose override lowers max_power would be popped at sizes that those
    GPUs then refuse, faulting every such job.
    """
    problems = []
    for model in served:
        allowed = [plan for plan in plans if plan.allowed_models is None or model in plan.allowed_models]
        if not allowed or any(plan.max_pixels is None for plan in allowed):
            continue
        powers = {
            plan.device.index: (plan.max_pixels or 0) // PIXELS_PER_POWER for plan in allowed if plan.device is not None
        }
        if max(powers.values(), default=data.max_power) < data.max_power:
            listed = ", ".join(f"GPU {index} max_power {power}" for index, power in sorted(powers.items()))
            problems.append(
                f"gpu_device_overrides: '{model}' may run only on {listed}, below the worker's max_power "
                f"{data.max_power}, which the horde is told; raise those overrides' max_power or lower "
                "max_power"
            )
    if problems:
        raise ConfigError(problems)


def served_by_some_slot(served: Sequence[str], plans: Sequence[SlotPlan]) -> list[str]:
    """The served models at least one slot may run, in the configured order (what is worth offering)."""
    if any(plan.allowed_models is None for plan in plans):
        return list(served)
    allowed = set().union(*(plan.allowed_models or frozenset() for plan in plans))
    return [model for model in served if model in allowed]
