"""`snapshot["telemetry"]`: the GPUs (through NVML) or, without them, the host; the energy and kudos per kWh."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from horde_worker_regen.devices.energy import kudos_per_kwh
from horde_worker_regen.devices.telemetry import GpuReading
from horde_worker_regen.devices.telemetry_state import Telemetry


def telemetry_snapshot(telemetry: Telemetry, kudos_session: float) -> dict[str, Any]:
    """The telemetry keys of the snapshot; `kudos_session` is the kudos the ratio is taken of."""
    host = telemetry.host
    energy = telemetry.meter.energy_kwh
    return {
        "available": telemetry.available,
        "source": telemetry.source,
        "note": telemetry.note,
        "sampled_at": telemetry.sampled_at,
        "gpus": [_gpu(gpu, telemetry.uses(gpu)) for gpu in telemetry.gpus],
        "host": None if host is None else asdict(host),
        "energy_kwh": energy,
        "kudos_per_kwh": kudos_per_kwh(kudos_session, energy),
    }


def _gpu(gpu: GpuReading, used: bool) -> dict[str, Any]:
    """A GPU's figures and whether this worker uses it (its energy counter is the meter's, not shown)."""
    figures = asdict(gpu)
    del figures["energy_mj"]
    return figures | {"used": used}
