"""One-line texts of the snapshot's telemetry, for views in a terminal (the console, a terminal UI).

They read the JSON of `snapshot["telemetry"]` (as `/status.json` serves it), so a view attached to
a running worker over HTTP and one inside it say the same. A figure that is None shows as a dash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MB_PER_GB = 1024.0
NOT_SAMPLED = "not sampled yet"


def _figure(value: float | None, unit: str, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def gpu_line(gpu: Mapping[str, Any]) -> str:
    """`GPU 0 NVIDIA GeForce RTX 4090: 10.0/24.0 GB · 87 % · 66 °C · 300/450 W`."""
    used, total = gpu["vram_used_mb"], gpu["vram_total_mb"]
    vram = "–" if used is None or total is None else f"{used / MB_PER_GB:.1f}/{total / MB_PER_GB:.1f} GB"
    figures = (vram, _figure(gpu["utilisation_pct"], " %"), _figure(gpu["temperature_c"], " °C"), _power(gpu))
    return f"GPU {gpu['index']} {gpu['name']}: " + " · ".join(figures)


def _power(gpu: Mapping[str, Any]) -> str:
    power, limit = gpu["power_w"], gpu["power_limit_w"]
    if power is None:
        return "power –"
    return f"{power:.0f} W" if limit is None else f"{power:.0f}/{limit:.0f} W"


def host_line(host: Mapping[str, Any] | None) -> str:
    """`CPU 13 % · RAM 6.0/32.0 GB`."""
    if host is None:
        return f"host {NOT_SAMPLED}"
    ram = f"{host['ram_used_mb'] / MB_PER_GB:.1f}/{host['ram_total_mb'] / MB_PER_GB:.1f} GB"
    return f"CPU {host['cpu_pct']:.0f} % · RAM {ram}"


def telemetry_lines(telemetry: Mapping[str, Any] | None) -> list[str]:
    """One line per GPU (or the note saying why there is none), then the host's."""
    if telemetry is None:
        return [f"telemetry {NOT_SAMPLED}"]
    gpus = [gpu_line(gpu) for gpu in telemetry["gpus"]]
    return [*(gpus or [telemetry["note"] or f"GPUs {NOT_SAMPLED}"]), host_line(telemetry["host"])]


def energy_text(telemetry: Mapping[str, Any] | None) -> str:
    """`1,234 kudos/kWh (5.0 Wh)`, or why there is no ratio yet."""
    if telemetry is None or not telemetry["available"]:
        return "kudos/kWh – (no GPU power readings)"
    wh = f"{telemetry['energy_kwh'] * 1000:.1f} Wh"
    ratio = telemetry["kudos_per_kwh"]
    return f"kudos/kWh – ({wh} so far)" if ratio is None else f"{ratio:,.0f} kudos/kWh ({wh})"
