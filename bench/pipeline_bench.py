"""Pipeline benchmark: slot duty and hand-off gap with the fake backend against the local horde.

    .venv/bin/python -m bench.pipeline_bench --jobs 1000 [--seconds-per-job 0.2] [--threads 2] [--write]

The local horde runs in this process on loopback with `--jobs` single-image 512x512 requests queued
(a full queue). The worker runs as a subprocess through the real CLI (`run --burst`) with the fake
backends and writes its metrics file at exit. Slot timings are the inference child's own
`time.monotonic()` stamps at the start and end of each job (`started_at`, `finished_at`), so the
hand-off gap (end of one job to start of the next on the same slot) includes the result message,
the main loop's reaction and the next `RunJob` message. Main-process CPU and RSS come from
`getrusage`/psutil inside the worker at exit (children excluded).
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
from horde_worker_regen.localhorde.testing import serve_local_horde  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fake_worker_arguments(parser, jobs=1000, seconds_per_job=0.2, queue_size=1, size=512)
    return parser.parse_args(argv)


async def run_worker(folder: Path, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """Queue the work, run the worker until it drains the queue; its metrics and the wall time."""
    config = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("bench-owner", trusted=True)
        requester = horde.add_user("bench-requester", trusted=True, kudos=10_000_000)
        queue_requests(horde, requester, args, "benchmark", steps=30)
        prepare_worker_dir(folder, horde, owner, args, {"dreamer_name": "Bench Dreamer", "stats_output_frequency": 10})
        environ = worker_environment()
        metrics = folder / "metrics.json"
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "horde_worker_regen",
            "run",
            "--burst",
            "-q",
            "--logs-dir",
            str(folder / "logs"),
            "--metrics-file",
            str(metrics),
            cwd=folder,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
        )
        status = await process.wait()
        wall = time.monotonic() - started
        if status != 0:
            raise SystemExit(f"the worker exited with status {status}; see {folder / 'logs'}")
        submitted = sum(1 for pg in horde.state.generations.values() if pg.is_completed and not pg.faulted)
        if submitted != args.jobs:
            raise SystemExit(f"only {submitted} of {args.jobs} images were submitted")
    return json.loads(metrics.read_text()), wall


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def slot_figures(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Duty (busy / span per slot, and over the window where every slot had work) and hand-off gaps."""
    by_slot: dict[int, list[tuple[float, float]]] = {}
    for job in jobs:
        if job["started_at"] is not None and job["finished_at"] is not None:
            by_slot.setdefault(job["slot"], []).append((job["started_at"], job["finished_at"]))
    busy = span = 0.0
    gaps: list[float] = []
    for intervals in by_slot.values():
        intervals.sort()
        busy += sum(end - start for start, end in intervals)
        span += intervals[-1][1] - intervals[0][0]
        gaps += [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(intervals)]
    window_start = max(intervals[0][0] for intervals in by_slot.values())
    window_end = min(intervals[-1][1] for intervals in by_slot.values())
    clipped = sum(
        max(0.0, min(end, window_end) - max(start, window_start))
        for intervals in by_slot.values()
        for start, end in intervals
    )
    return {
        "duty_span": busy / span,
        "duty_common_window": clipped / (len(by_slot) * (window_end - window_start)),
        "gap_ms": {name: 1000 * percentile(gaps, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "gap_max_ms": 1000 * max(gaps),
        "jobs_timed": sum(len(intervals) for intervals in by_slot.values()),
    }


def report(metrics: dict[str, Any], wall: float, args: argparse.Namespace) -> str:
    """The figures as Markdown."""
    jobs = metrics["jobs"]
    slots = slot_figures(jobs)
    process, at_start = metrics["process"], metrics["process_at_start"]
    cpu = process["cpu_user_s"] + process["cpu_system_s"] - at_start["cpu_user_s"] - at_start["cpu_system_s"]
    startup_cpu = at_start["cpu_user_s"] + at_start["cpu_system_s"]
    command = (
        f".venv/bin/python -m bench.pipeline_bench --jobs {args.jobs} --seconds-per-job {args.seconds_per_job}"
        f" --threads {args.threads} --queue-size {args.queue_size} --size {args.size}"
    )
    lines = [
        f"### {datetime.date.today().isoformat()}: {args.jobs} jobs, {args.threads} slots, "
        f"{args.seconds_per_job * 1000:.0f} ms per job, {args.size}x{args.size}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Slot duty (busy / each slot's first start to last end) | {slots['duty_span']:.4f} |",
        f"| Slot duty (window where every slot had work) | {slots['duty_common_window']:.4f} |",
        f"| Hand-off gap p50 / p95 / p99 | {slots['gap_ms']['p50']:.2f} / {slots['gap_ms']['p95']:.2f} / "
        f"{slots['gap_ms']['p99']:.2f} ms |",
        f"| Hand-off gap max | {slots['gap_max_ms']:.2f} ms |",
        f"| Jobs timed | {slots['jobs_timed']} |",
        f"| Wall time (worker start to exit) | {wall:.1f} s |",
        f"| Main process CPU while serving | {cpu:.2f} s, {1000 * cpu / len(jobs):.2f} ms per job |",
        f"| Main process CPU for start-up (imports, checks, spawning) | {startup_cpu:.2f} s |",
        f"| Main process RSS when serving began / at exit | {at_start['rss_bytes'] / 2**20:.1f} / "
        f"{process['rss_bytes'] / 2**20:.1f} MiB |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()  # the local horde in this process logs every request; keep only its warnings
    logger.add(sys.stderr, level="WARNING")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    metrics, wall = asyncio.run(run_worker(folder, args))
    text = report(metrics, wall, args)
    print(text)
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
