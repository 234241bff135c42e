"""Soak benchmark: thousands of fake jobs through the real worker, its main-process memory watched.

    .venv/bin/python -m bench.soak_bench --jobs 2000 [--recycle-after-jobs 250] [--recycle-above-rss-mib 160]
        [--leak-mib-per-job 1] [--write]

The local horde runs in this process on loopback with `--jobs` single-image requests queued. The
worker runs as a subprocess through the real CLI (`run --burst`) with the fake backends and child
recycling switched on two ways: after `--recycle-after-jobs` jobs, and above `--recycle-above-rss-mib`
of resident memory, which the fake backend's deliberate leak (`--leak-mib-per-job`) reaches (with the
defaults, the RSS rule fires first, about every 100 jobs of a child; the job rule is its backstop). The
main process's RSS is sampled with psutil every `--sample-interval` seconds together with the number
of images the horde has received. Warm-up RSS is the median of the samples taken while the first
10-15 % of the images came in; final RSS the median of the last five samples before the last one
arrived; growth is final over warm-up, and the trend is the least-squares slope of RSS over the
images delivered after warm-up (a leak shows as a steady KiB per job, whatever the run's length).
Recycles are counted from the worker's log and checked against the inference PIDs psutil saw.
Every image must be delivered once and the worker must exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fake_worker import (  # noqa: E402
    RESULTS,
    add_fake_worker_arguments,
    prepare_worker_dir,
    queue_requests,
    worker_environment,
)
from horde_worker_regen.localhorde.config import LocalHordeConfig  # noqa: E402
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde  # noqa: E402

WARM_UP = (0.10, 0.15)  # share of the images delivered: the warm-up window
FINAL_SAMPLES = 5
GROWTH_LIMIT = 0.05
EXIT_GRACE_S = 5.0
READY = re.compile(r"(?P<name>[a-z]+(?:-\d+)?)#\d+ ready \(pid (?P<pid>\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fake_worker_arguments(parser, jobs=2000, seconds_per_job=0.02, queue_size=2, size=256)
    parser.add_argument("--recycle-after-jobs", type=int, default=250, help="recycle_process_after_jobs")
    parser.add_argument("--recycle-above-rss-mib", type=int, default=160, help="recycle_process_above_rss_mib")
    parser.add_argument("--leak-mib-per-job", type=int, default=1, help="fake backend memory_growth_mib_per_job")
    parser.add_argument("--sample-interval", type=float, default=0.5, help="seconds between RSS samples")
    return parser.parse_args(argv)


def soak_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The soak's own bridgeData keys: recycling on, and a fake backend that leaks."""
    return {
        "dreamer_name": "Soak Dreamer", "stats_output_frequency": 30,
        "fake_backend": {"memory_growth_mib_per_job": args.leak_mib_per_job},
        "recycle_process_after_jobs": args.recycle_after_jobs,
        "recycle_process_above_rss_mib": args.recycle_above_rss_mib,
    }  # fmt: skip


@dataclass
class Sample:
    """One look at the worker: seconds since start, main-process RSS, images delivered so far."""

    at: float
    rss: int
    delivered: int


@dataclass
class SoakRun:
    """What the run produced."""

    samples: list[Sample] = field(default_factory=list)
    child_pids: dict[int, str] = field(default_factory=dict)  # every descendant psutil saw -> its command line
    children: list[psutil.Process] = field(default_factory=list)
    left_running: list[int] = field(default_factory=list)  # descendants still running after the worker exited
    lines: list[str] = field(default_factory=list)
    wall: float = 0.0
    status: int | None = None
    delivered: int = 0
    lost: int = 0


def delivered(horde: RunningLocalHorde) -> int:
    """Images the horde has received (submitted and not faulted)."""
    return sum(1 for pg in horde.state.generations.values() if pg.is_completed and not pg.faulted)


async def sample_forever(pid: int, horde: RunningLocalHorde, run: SoakRun, interval: float) -> None:
    """RSS of the main process and the images delivered, every `interval` s; child PIDs as they appear."""
    main = psutil.Process(pid)
    started = time.monotonic()
    while True:
        with contextlib.suppress(psutil.NoSuchProcess):
            run.samples.append(Sample(time.monotonic() - started, main.memory_info().rss, delivered(horde)))
            for child in main.children(recursive=True):
                if child.pid not in run.child_pids:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        run.child_pids[child.pid] = " ".join(child.cmdline())
                        run.children.append(child)
        await asyncio.sleep(interval)  # a sampling period


async def left_running(children: list[psutil.Process]) -> list[int]:
    """Children still running `EXIT_GRACE_S` after the worker exited (multiprocessing's resource tracker
    exits only once it sees the worker's end of its pipe close, a moment after the worker)."""
    deadline = time.monotonic() + EXIT_GRACE_S
    while (alive := [child.pid for child in children if _running(child)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # a polling period: their exit is what is waited for
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ready_pids(lines: list[str], prefix: str = "") -> set[int]:
    """PIDs of the children the worker announced ready (those whose name starts with `prefix`)."""
    return {int(match["pid"]) for line in lines if (match := READY.search(line)) and match["name"].startswith(prefix)}


async def read_lines(stream: asyncio.StreamReader, run: SoakRun) -> None:
    """Keep the worker's console output (and keep its pipe drained)."""
    async for raw in stream:
        run.lines.append(raw.decode(errors="replace").rstrip("\n"))


async def soak(folder: Path, args: argparse.Namespace) -> SoakRun:
    """Queue the work and run the worker until it drains the queue, sampling it all along."""
    run = SoakRun()
    config = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("soak-owner", trusted=True)
        requester = horde.add_user("soak-requester", trusted=True, kudos=100_000_000)
        queue_requests(horde, requester, args, "soak", steps=10)
        prepare_worker_dir(folder, horde, owner, args, soak_settings(args))
        environ = worker_environment()
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "horde_worker_regen",
            "run",
            "--burst",
            "--logs-dir",
            str(folder / "logs"),
            cwd=folder,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        reader = asyncio.create_task(read_lines(process.stdout, run))
        sampler = asyncio.create_task(sample_forever(process.pid, horde, run, args.sample_interval))
        try:
            run.status = await process.wait()
            await reader
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            if process.returncode is None:
                process.kill()
                await process.wait()
        run.wall = time.monotonic() - started
        run.left_running = await left_running(run.children)
        run.delivered = delivered(horde)
        run.lost = sum(1 for pg in horde.state.generations.values() if not pg.is_completed and not pg.faulted)
    return run


def rss_figures(run: SoakRun, jobs: int) -> dict[str, float]:
    """Warm-up and final RSS (MiB), growth, and the peak after warm-up."""
    low, high = WARM_UP[0] * jobs, WARM_UP[1] * jobs
    warm = [s.rss for s in run.samples if low <= s.delivered <= high]
    before_end = [s for s in run.samples if s.delivered < jobs] or run.samples
    final = [s.rss for s in before_end[-FINAL_SAMPLES:]]
    if not warm or not final:
        raise SystemExit("too few RSS samples: lower --sample-interval or raise --jobs")
    after_warm_up = [s for s in run.samples if low <= s.delivered < jobs]
    warm_mib, final_mib = statistics.median(warm) / 2**20, statistics.median(final) / 2**20
    slope = statistics.linear_regression([s.delivered for s in after_warm_up], [s.rss for s in after_warm_up]).slope
    return {
        "warm": warm_mib,
        "final": final_mib,
        "growth": final_mib / warm_mib - 1,
        "peak": max(s.rss for s in after_warm_up) / 2**20,
        "samples": len(run.samples),
        "kib_per_job": slope / 1024,
    }


def report(run: SoakRun, args: argparse.Namespace) -> tuple[str, bool]:
    """The figures as Markdown, and whether the run met its targets."""
    rss = rss_figures(run, args.jobs)
    recycles = [line for line in run.lines if "Recycling slot" in line]
    by_jobs = sum("recycle_process_after_jobs" in line for line in recycles)
    by_rss = sum("recycle_process_above_rss_mib" in line for line in recycles)
    inference = ready_pids(run.lines, "inference-")
    expected = args.threads + len(recycles)  # less any replacement still starting when the worker stopped
    recycled = {int(match[1]) for line in recycles if (match := re.search(r", pid (\d+)\)", line))}
    helpers = {pid for pid, cmdline in run.child_pids.items() if "resource_tracker" in cmdline}
    unannounced = set(run.child_pids) - ready_pids(run.lines) - helpers
    ok = (run.status == 0 and run.delivered == args.jobs and run.lost == 0 and rss["growth"] < GROWTH_LIMIT
          and recycles != [] and recycled <= inference and expected - args.threads <= len(inference) <= expected
          and not run.left_running)  # fmt: skip
    command = (
        f".venv/bin/python -m bench.soak_bench --jobs {args.jobs} --seconds-per-job {args.seconds_per_job}"
        f" --threads {args.threads} --queue-size {args.queue_size} --size {args.size}"
        f" --recycle-after-jobs {args.recycle_after_jobs} --recycle-above-rss-mib {args.recycle_above_rss_mib}"
        f" --leak-mib-per-job {args.leak_mib_per_job}"
    )
    lines = [
        f"### {datetime.date.today().isoformat()}: soak, {args.jobs} fake jobs with child recycling",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}",
        "",
        "| figure | result |",
        "|---|---|",
        f"| images delivered / queued, ids lost | {run.delivered} / {args.jobs}, {run.lost} |",
        f"| worker exit status, wall time | {run.status}, {run.wall:.0f} s |",
        f"| main-process RSS after warm-up (10-15 % of the images) | {rss['warm']:.1f} MiB |",
        f"| main-process RSS at the end (last {FINAL_SAMPLES} samples) | {rss['final']:.1f} MiB |",
        f"| growth after warm-up (target < {GROWTH_LIMIT:.0%}) | {rss['growth']:+.2%} |",
        f"| peak RSS after warm-up | {rss['peak']:.1f} MiB ({rss['samples']:.0f} samples) |",
        f"| RSS trend after warm-up (least squares over the samples) | {rss['kib_per_job']:+.2f} KiB per job |",
        f"| recycles seen: after N jobs / above the RSS limit | {by_jobs} / {by_rss} |",
        f"| inference children announced ready (slots + recycles = {expected}; a replacement still starting "
        f"when the worker stops never is) | {len(inference)}: {', '.join(str(pid) for pid in sorted(inference))} |",
        f"| recycled children that had been announced ready | {len(recycled & inference)} of {len(recycled)} |",
        f"| child PIDs psutil saw / multiprocessing helpers / never announced ready | {len(run.child_pids)} / "
        f"{len(helpers)} / {len(unannounced)} |",
        f"| child processes still running {EXIT_GRACE_S:.0f} s after the worker exited | {len(run.left_running)} "
        f"{sorted(run.child_pids[pid][:60] for pid in run.left_running)} |",
        f"| verdict | {'PASS' if ok else 'FAIL'} |",
        "",
    ]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()  # the local horde in this process logs every request; keep only its warnings
    logger.add(sys.stderr, level="WARNING")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="soak-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    run = asyncio.run(soak(folder, args))
    text, ok = report(run, args)
    print(text)
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
