"""Energy of the GPUs this worker uses, and kudos per kWh: pure functions over the telemetry's samples.

Where the driver keeps an energy counter for every GPU measured (`nvmlDeviceGetTotalEnergyConsumption`,
mJ since the driver loaded: Volta and later), the energy between two samples is the counter's rise,
exact whatever the power did between them. Otherwise (an older card, a counter that went back because
the driver reloaded) it is the area under the summed power draw, by a trapezoid between consecutive
samples that both have a power reading: a sample without either ends the run, so a gap is counted as
nothing rather than guessed. Only the GPUs are measured; the rest of the machine draws power NVML does
not see, so kudos per kWh is per kWh *of GPU energy*.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

JOULES_PER_KWH = 3_600_000.0
# Below this (0.1 Wh: half a second of a 700 W card) a ratio would be mostly noise.
MIN_KWH_FOR_RATIO = 1e-4


@dataclass(frozen=True)
class EnergyMeter:
    """GPU energy since the worker started, and the last sample (to measure the next interval from)."""

    energy_kwh: float = 0.0
    last_at: float | None = None  # monotonic seconds
    last_power_w: float | None = None
    last_counter_mj: float | None = None

    def add(self, at: float, power_w: float | None, counter_mj: float | None = None) -> EnergyMeter:
        """The meter after a sample at `at` (monotonic s) drawing `power_w` watts in all, the GPUs' energy
        counters summing to `counter_mj` millijoules (None: not measured).

        A sample not after the previous one adds nothing (the clock is monotonic; this keeps the sum so);
        a negative power (no card reports one) counts as zero."""
        if self.last_at is not None and at <= self.last_at:
            return self
        power = None if power_w is None else max(0.0, power_w)
        joules = self._joules_to(at, power, counter_mj)
        return EnergyMeter(self.energy_kwh + joules / JOULES_PER_KWH, at, power, counter_mj)

    def _joules_to(self, at: float, power: float | None, counter_mj: float | None) -> float:
        """The energy since the last sample: the counters' rise, else the power's trapezoid, else nothing."""
        if self.last_at is None:
            return 0.0
        if counter_mj is not None and self.last_counter_mj is not None and counter_mj >= self.last_counter_mj:
            return (counter_mj - self.last_counter_mj) / 1000.0
        if power is None or self.last_power_w is None:
            return 0.0
        return (self.last_power_w + power) / 2.0 * (at - self.last_at)


def total_power_w(powers: Iterable[float | None]) -> float | None:
    """The summed draw of the GPUs that report one; None when none does."""
    measured = [power for power in powers if power is not None]
    return sum(measured) if measured else None


def total_counter_mj(counters: Iterable[float | None]) -> float | None:
    """The summed energy counters, only when every GPU measured has one (a partial sum would jump when a
    GPU's counter comes or goes); None for no GPU at all."""
    readings = list(counters)
    if not readings or any(counter is None for counter in readings):
        return None
    return sum(counter for counter in readings if counter is not None)


def kudos_per_kwh(kudos: float, energy_kwh: float) -> float | None:
    """Kudos earned per kWh of GPU energy; None until enough energy is measured for the ratio to mean much."""
    if energy_kwh < MIN_KWH_FOR_RATIO:
        return None
    return kudos / energy_kwh
