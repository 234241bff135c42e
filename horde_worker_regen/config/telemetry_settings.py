"""The telemetry key of bridgeData: how often the GPUs and the host are sampled for the dashboard."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

DEFAULT_TELEMETRY_INTERVAL_S = 5.0
# Under a second NVML's own utilisation window is longer than the gap; over five minutes the energy
# integral misses whole jobs' worth of change in power.
MIN_TELEMETRY_INTERVAL_S, MAX_TELEMETRY_INTERVAL_S = 1.0, 300.0

TelemetryInterval = Annotated[
    float,
    Field(
        ge=MIN_TELEMETRY_INTERVAL_S,
        le=MAX_TELEMETRY_INTERVAL_S,
        description="Seconds between samples of the GPUs (NVML) and the host for the dashboard, /metrics and the "
        f"energy figures ({MIN_TELEMETRY_INTERVAL_S:g}..{MAX_TELEMETRY_INTERVAL_S:g}).",
    ),
]
