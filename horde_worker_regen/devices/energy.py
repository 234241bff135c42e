"""Energy from measured power, and kudos per kWh: pure functions over the telemetry's samples.

Energy is the area under the GPUs' summed power draw, by trapezoids between consecutive samples
that both have a power reading: a sample without one (no GPU reports power) ends the run of
trapezoids, so a gap is counted as nothing rather than guessed. Only the GPUs are measured; the
rest of the machine draws power NVML does not see, so kudos per kWh is per kWh *of GPU energy*.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

JOULES_PER_KWH = 3_600_000.0
# Below this (0.1 Wh: half a second of a 700 W card) a ratio would be mostly noise.
MIN_KWH_FOR_RATIO = 1e-4


@dataclass(frozen=True)
class EnergyMeter:
    """GPU energy since the worker started, and the last sample with power (to draw the next trapezoid)."""

    energy_kwh: float = 0.0
    last_at: float | None = None  # monotonic seconds
    last_power_w: float | None = None

    def add(self, at: float, power_w: float | None) -> EnergyMeter:
        """The meter after a sample at `at` (monotonic s) drawing `power_w` watts in all (None: not measured).

        A sample not after the previous one adds nothing (the clock is monotonic; this keeps the sum so);
        a negative power (no card reports one) counts as zero."""
        if power_w is None:
            return EnergyMeter(self.energy_kwh, None, None)
        power = max(0.0, power_w)
        if self.last_at is None or self.last_power_w is None:
            return EnergyMeter(self.energy_kwh, at, power)
        elapsed = at - self.last_at
        if elapsed <= 0:
            return EnergyMeter(self.energy_kwh, self.last_at, self.last_power_w)
        joules = (self.last_power_w + power) / 2.0 * elapsed
        return EnergyMeter(self.energy_kwh + joules / JOULES_PER_KWH, at, power)


def total_power_w(powers: Iterable[float | None]) -> float | None:
    """The summed draw of the GPUs that report one; None when none does."""
    measured = [power for power in powers if power is not None]
    return sum(measured) if measured else None


def kudos_per_kwh(kudos: float, energy_kwh: float) -> float | None:
    """Kudos earned per kWh of GPU energy; None until enough energy is measured for the ratio to mean much."""
    if energy_kwh < MIN_KWH_FOR_RATIO:
        return None
    return kudos / energy_kwh
