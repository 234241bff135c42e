"""The GPU check's own parts that run without a GPU: its refusal on a machine without one, and its figures."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.gpu_check import GpuReadings, report, vram_per_slot

REPO_ROOT = Path(__file__).resolve().parents[2]


def _records() -> list[dict[str, Any]]:
    started = [{"kind": "child_started", "child": f"inference-{n}#{n + 1}", "pid": 100 + n} for n in (1, 2)]
    finished = [
        {"kind": "inference_finished", "slot": slot, "started_at": start, "finished_at": start + 1.0}
        for slot in (0, 1)
        for start in (10.0, 11.02)
    ]
    return [*started, *finished]


def test_each_slot_gets_the_peak_vram_of_its_own_process() -> None:
    readings = GpuReadings(devices=["NVIDIA Test"], process_peak_mb={101: 2100.0, 102: 2300.0, 999: 50.0})
    assert vram_per_slot(_records(), readings) == {"inference-1#2": 2100.0, "inference-2#3": 2300.0}


def test_the_report_shows_duty_gap_vram_and_throughput() -> None:
    readings = GpuReadings(["NVIDIA Test"], [50.0, 90.0], [120.0, 200.0], {101: 2100.0, 102: 2300.0})
    args = argparse.Namespace(jobs=4, size=512, steps=20, cpu=False)
    text = report(_records(), 110.0, readings, args)
    assert "| images per minute (first pop to last submit) | 110.0 |" in text
    assert "| hand-off gap p50 / p95 / max (ms) | 20.0 / 20.0 / 20.0 |" in text
    assert "| peak VRAM of inference-2#3 (MB, NVML) | 2300 |" in text
    assert "| power mean / peak (W) | 160 / 200 |" in text


@pytest.mark.skipif(not (REPO_ROOT / ".venv" / "bin" / "python").exists(), reason="needs the runtime in .venv")
def test_without_a_cuda_gpu_the_script_says_so_and_stops() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the check would run")
    result = subprocess.run([str(REPO_ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no CUDA GPU" in result.stderr
