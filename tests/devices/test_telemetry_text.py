"""The terminal texts of the telemetry, from the snapshot's JSON."""

from __future__ import annotations

from typing import Any

from horde_worker_regen.devices.telemetry_text import energy_text, gpu_line, host_line, telemetry_lines

BIG = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "vram_used_mb": 10_240.0, "vram_total_mb": 24_576.0,
       "utilisation_pct": 87.0, "temperature_c": 66.0, "power_w": 300.0, "power_limit_w": 450.0}  # fmt: skip
OLD = BIG | {"index": 1, "name": "GTX 1070", "vram_used_mb": None, "power_w": None, "power_limit_w": None}
HOST = {"cpu_pct": 12.6, "ram_used_mb": 6_144.0, "ram_total_mb": 32_768.0}


def _telemetry(**fields: Any) -> dict[str, Any]:
    base = {"available": True, "source": "nvml", "note": None, "sampled_at": 1.0, "gpus": [BIG, OLD],
            "host": HOST, "energy_kwh": 0.005, "kudos_per_kwh": 4000.0}  # fmt: skip
    return base | fields


def test_a_gpu_line_has_every_figure_and_a_dash_for_what_was_not_read() -> None:
    assert gpu_line(BIG) == "GPU 0 NVIDIA GeForce RTX 4090: 10.0/24.0 GB · 87 % · 66 °C · 300/450 W"
    assert gpu_line(OLD) == "GPU 1 GTX 1070: – · 87 % · 66 °C · power –"


def test_the_lines_are_the_gpus_then_the_host_or_the_note_without_gpus() -> None:
    assert telemetry_lines(_telemetry()) == [gpu_line(BIG), gpu_line(OLD), "CPU 13 % · RAM 6.0/32.0 GB"]
    note = "no GPU telemetry: Driver Not Loaded"
    assert telemetry_lines(_telemetry(gpus=[], note=note, available=False)) == [note, host_line(HOST)]
    assert telemetry_lines(None) == ["telemetry not sampled yet"]


def test_the_energy_text_gives_the_ratio_once_there_is_one() -> None:
    assert energy_text(_telemetry()) == "4,000 kudos/kWh (5.0 Wh)"
    assert energy_text(_telemetry(kudos_per_kwh=None, energy_kwh=0.00001)) == "kudos/kWh – (0.0 Wh so far)"
    assert energy_text(_telemetry(available=False)) == "kudos/kWh – (no GPU power readings)"
