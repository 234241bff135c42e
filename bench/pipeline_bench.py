"""Pipeline benchmark: slot duty and hand-off gap with the fake backend against the local horde.

    .venv/bin/python -m bench.pipeline_bench --jobs 1000 [--seconds-per-job 0.2] [--threads 2] [--write]

The local horde runs in this process on loopback with `--jobs` single-image 512x512 requests queued
(a full queue). The worker runs as a subprocess through the real CLI (`run --burst`) with the fake
backends and writes its event log (`--metrics-file`, JSON lines). Slot timings come from its
`inference_finished` records: the inference child's own `time.monotonic()` stamps at the start and
end of each job (`started_at`, `finished_at`), so the hand-off gap (end of one job to start of the
next on the same slot) includes the result message, the main loop's reaction and the next `RunJob`
message. Main-process CPU and RSS come from the `process` figures of the `worker_started` and
`worker_stopped` records (`getrusage`/psutil inside the worker, children excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
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
from horde_worker_regen.worker.event_file import read_event_file  # noqa: E402

Records = list[dict[str, Any]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fake_worker_arguments(parser, jobs=1000, seconds_per_job=0.2, queue_size=1, size=512)
    return parser.parse_args(argv)


async def run_worker(folder: Path, args: argparse.Namespace) -> tuple[Records, float]:
    """Queue the work, run the worker until it drains the queue; its event records and the wall time."""
    config = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("bench-owner", trusted=True)
        requester = horde.add_user("bench-requester", trusted=True, kudos=10_000_000)
        queue_requests(horde, requester, args, "benchmark", steps=30)
        prepare_worker_dir(folder, horde, owner, args, {"dreamer_name": "Bench Dreamer", "stats_output_frequency": 10})
        environ = worker_environment()
        metrics = folder / "metrics.jsonl"
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
    return read_event_file(metrics), wall


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def slot_figures(records: Records) -> dict[str, Any]:
    """Duty (busy / span per slot, and over the window where every slot had work) and hand-off gaps,
    from the child-stamped times of the `inference_finished` records."""
    by_slot: dict[int, list[tuple[float, float]]] = {}
    for record in records:
        start, end = record.get("started_at"), record.get("finished_at")
        if record["kind"] == "inference_finished" and start is not None and end is not None:
            by_slot.setdefault(record["slot"], []).append((start, end))
    if not by_slot:
        raise SystemExit("the event file has no timed inference_finished record")
    busy = span = 0.0
    gaps: list[float] = []
    for intervals in by_slot.values():
        intervals.sort()
        busy += sum(end - start for start, end in intervals)
        span += intervals[-1][1] - intervals[0][0]
        gaps += [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(intervals)]
    gaps = gaps or [0.0]  # one job per slot: no hand-off to measure
    window_start = max(intervals[0][0] for intervals in by_slot.values())
    window_end = min(intervals[-1][1] for intervals in by_slot.values())
    clipped = sum(
        max(0.0, min(end, window_end) - max(start, window_start))
        for intervals in by_slot.values()
        for start, end in intervals
    )
    window = len(by_slot) * (window_end - window_start)
    return {
        "duty_span": busy / span if span > 0 else 1.0,
        "duty_common_window": clipped / window if window > 0 else float("nan"),
        "gap_ms": {name: 1000 * percentile(gaps, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "gap_max_ms": 1000 * max(gaps),
        "jobs_timed": sum(len(intervals) for intervals in by_slot.values()),
        "slots_used": len(by_slot),
    }


def one_record(records: Records, kind: str) -> dict[str, Any]:
    """The record of `kind` (the last one, if the worker wrote several); SystemExit if it wrote none."""
    found = [record for record in records if record["kind"] == kind]
    if not found:
        raise SystemExit(f"the event file has no {kind} record (did the worker stop cleanly?)")
    return found[-1]


def pops_per_second(records: Records) -> float:
    """Jobs popped per second from the first pop to the last: what one main process hands the slots at most
    when pops come back to back (the slots can take `slots / seconds per job`)."""
    stamps = [float(record["at"]) for record in records if record["kind"] == "job_popped"]
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def pop_round_trip_ms(records: Records) -> str:
    """`p50 / p95` of the pop requests' round trips (request sent to answer read), in ms."""
    seconds = [float(record["seconds"]) for record in records if record["kind"] == "pop_answered"]
    if not seconds:
        return "n/a"
    return f"{1000 * percentile(seconds, 0.5):.2f} / {1000 * percentile(seconds, 0.95):.2f} ms"


def cpu_seconds(process: dict[str, Any]) -> float:
    """User plus system CPU seconds of a `process` figure."""
    return float(process["cpu_user_s"]) + float(process["cpu_system_s"])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared: they say what else ran)."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def report(records: Records, wall: float, args: argparse.Namespace, load: tuple[str, str]) -> str:
    """The figures as Markdown."""
    slots = slot_figures(records)
    jobs = sum(1 for record in records if record["kind"] == "job_ended")
    at_start, process = (
        one_record(records, "worker_started")["process"],
        one_record(records, "worker_stopped")["process"],
    )
    cpu = cpu_seconds(process) - cpu_seconds(at_start)
    startup_cpu = cpu_seconds(at_start)
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
        f"Python {platform.python_version()}  ",
        f"Load average (1 / 5 / 15 min, the worker's own included): {load[0]} before, {load[1]} after  ",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Slot duty (busy / each slot's first start to last end) | {slots['duty_span']:.4f} |",
        f"| Slot duty (window where every slot had work) | {slots['duty_common_window']:.4f} |",
        f"| Hand-off gap p50 / p95 / p99 | {slots['gap_ms']['p50']:.2f} / {slots['gap_ms']['p95']:.2f} / "
        f"{slots['gap_ms']['p99']:.2f} ms |",
        f"| Hand-off gap max | {slots['gap_max_ms']:.2f} ms |",
        f"| Jobs timed | {slots['jobs_timed']} |",
        f"| Slots that ran jobs | {slots['slots_used']} of {args.threads} |",
        f"| Jobs popped per second (first pop to last) | {pops_per_second(records):.1f} "
        f"(the slots could take {args.threads / args.seconds_per_job:.1f}) |",
        f"| Pop round trip p50 / p95 | {pop_round_trip_ms(records)} |",
        f"| Wall time (worker start to exit) | {wall:.1f} s |",
        f"| Main process CPU while serving | {cpu:.2f} s, {1000 * cpu / max(jobs, 1):.2f} ms per job |",
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
    load_before = load_average()
    records, wall = asyncio.run(run_worker(folder, args))
    text = report(records, wall, args, (load_before, load_average()))
    print(text)
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
