"""`/metrics` for the telemetry and identity keys: per-GPU gauges, the host, energy, kudos per kWh, an info metric.

A GPU field NVML would not give (None in the snapshot) is left out of its family rather than
reported as 0, so a dashboard draws a gap instead of a false reading. The identity's info metric
carries no secret: the snapshot's identity holds none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

MB_BYTES = 1024 * 1024
PREFIX = "horde_worker"

# Snapshot field of a GPU → (metric name, help, factor to the metric's unit).
_GPU_GAUGES: dict[str, tuple[str, str, float]] = {
    "vram_used_mb": ("gpu_vram_used_bytes", "GPU memory in use (all processes), bytes.", MB_BYTES),
    "vram_total_mb": ("gpu_vram_total_bytes", "GPU memory in all, bytes.", MB_BYTES),
    "utilisation_pct": ("gpu_utilisation_percent", "GPU busy time over NVML's last sample period, %.", 1.0),
    "temperature_c": ("gpu_temperature_celsius", "GPU core temperature, °C.", 1.0),
    "power_w": ("gpu_power_watts", "GPU power draw, W.", 1.0),
    "power_limit_w": ("gpu_power_limit_watts", "GPU power limit enforced by the driver, W.", 1.0),
}


def telemetry_families(telemetry: dict[str, Any]) -> Iterator[Metric]:
    """The GPUs (labelled `gpu` by index, with `name`), the host, the energy and kudos per kWh."""
    for field, (name, text, factor) in _GPU_GAUGES.items():
        family = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["gpu", "name"])
        for gpu in telemetry["gpus"]:
            if gpu[field] is not None:
                family.add_metric([str(gpu["index"]), gpu["name"]], gpu[field] * factor)
        yield family
    yield GaugeMetricFamily(
        f"{PREFIX}_gpu_telemetry_available", "1 while GPU figures are read through NVML.",
        value=1.0 if telemetry["available"] else 0.0,
    )  # fmt: skip
    host = telemetry["host"]
    if host is not None:
        yield GaugeMetricFamily(f"{PREFIX}_host_cpu_percent", "CPU use of the whole machine, %.", value=host["cpu_pct"])
        yield GaugeMetricFamily(
            f"{PREFIX}_host_memory_used_bytes", "Memory in use on the machine, bytes.",
            value=host["ram_used_mb"] * MB_BYTES,
        )  # fmt: skip
        yield GaugeMetricFamily(
            f"{PREFIX}_host_memory_total_bytes", "Memory of the machine, bytes.", value=host["ram_total_mb"] * MB_BYTES
        )
    # prometheus_client appends `_total` to counter names itself.
    yield CounterMetricFamily(
        f"{PREFIX}_energy_kwh", "Energy of the GPUs this worker uses since it started (NVML's counter or power), kWh.",
        value=telemetry["energy_kwh"],
    )  # fmt: skip
    if telemetry["kudos_per_kwh"] is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_kudos_per_kwh", "Kudos earned this run per kWh of GPU energy.", value=telemetry["kudos_per_kwh"]
        )


def identity_families(identity: dict[str, Any]) -> Iterator[Metric]:
    """`horde_worker_identity_info{...} 1` (the horde, its version, this worker's name and id, agent, backend)
    and the number of models offered."""
    labels = {
        "horde_url": identity["horde_url"],
        "horde_version": identity["horde_version"] or "",
        "worker_name": identity["worker_name"],
        "worker_id": identity["worker_id"] or "",
        "bridge_agent": identity["bridge_agent"],
        "backend": identity["backend"]["kind"],
        "backend_label": identity["backend"]["label"],
        "worker_version": identity["worker_version"],
    }
    family = InfoMetricFamily(f"{PREFIX}_identity", "Which horde this worker serves, as whom, with what.")
    family.add_metric([], labels)
    yield family
    yield GaugeMetricFamily(
        f"{PREFIX}_models_offered", "Image models offered in the pops now.", value=len(identity["models_offered"])
    )
