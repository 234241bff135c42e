"""The latest telemetry, as the sampler left it: what the dashboard (and every view) reads on the event loop.

The sampler (`worker/telemetry_sampler.py`) reads in a thread and records here on the loop, so a
reader never sees a half-written sample. Every GPU NVML sees is shown, but the energy (and so kudos
per kWh) counts only `used_gpus`, the GPUs this worker's slots run on: another card in the machine (a
desktop's display GPU, one left to other work by `gpu_device_indices`) draws power the worker did not
earn with. NVML and the worker number the GPUs alike (PCI bus order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from horde_worker_regen.devices.energy import EnergyMeter, total_counter_mj, total_power_w
from horde_worker_regen.devices.telemetry import GpuReading, HostReading


@dataclass
class Telemetry:
    """The GPUs and the host at the last sample, why there are no GPU figures (if so), and the energy so far
    of the GPUs this worker uses (none given: a CPU worker, no GPU energy)."""

    used_gpus: frozenset[int] = frozenset()
    source: Literal["nvml", "none"] = "none"
    note: str | None = None  # "no GPU telemetry: <why>", said once
    sampled_at: float | None = None  # wall clock of the last sample
    gpus: list[GpuReading] = field(default_factory=list)
    host: HostReading | None = None
    meter: EnergyMeter = field(default_factory=EnergyMeter)

    @property
    def available(self) -> bool:
        """Whether GPU figures are read (NVML answered and sees a GPU)."""
        return self.source == "nvml"

    def record(self, gpus: list[GpuReading], host: HostReading, at: float, wall: float) -> None:
        """One sample taken at `at` (monotonic s; the energy integrates over it) and `wall` (shown)."""
        self.gpus = gpus
        self.host = host
        self.sampled_at = wall
        used = [gpu for gpu in gpus if self.uses(gpu)]
        # A used GPU missing from this sample (NVML lost it) leaves the counters' sum unmeasured, not smaller.
        counters = [gpu.energy_mj for gpu in used] if len(used) == len(self.used_gpus) else [None]
        self.meter = self.meter.add(at, total_power_w(gpu.power_w for gpu in used), total_counter_mj(counters))

    def uses(self, gpu: GpuReading) -> bool:
        """Whether this worker's slots run on `gpu` (so its energy counts)."""
        return gpu.index in self.used_gpus
