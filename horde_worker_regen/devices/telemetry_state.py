"""The latest telemetry, as the sampler left it: what the dashboard (and every view) reads on the event loop.

The sampler (`worker/telemetry_sampler.py`) reads in a thread and records here on the loop, so a
reader never sees a half-written sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from horde_worker_regen.devices.energy import EnergyMeter, total_power_w
from horde_worker_regen.devices.telemetry import GpuReading, HostReading


@dataclass
class Telemetry:
    """The GPUs and the host at the last sample, why there are no GPU figures (if so), and the energy so far."""

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
        self.meter = self.meter.add(at, total_power_w(gpu.power_w for gpu in gpus))
