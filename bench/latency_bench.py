"""Closed-loop latency: one request at a time, each sent when the last came back.

    .venv/bin/python -m bench.latency_bench [--requests 40] [--seconds-per-job 1.0] [--idle-pop-interval 1.0]

The local horde runs in this process on loopback; the worker runs as a subprocess through the real
CLI (`run`) with the fake backends (a fixed time per job) and the template's settings. Once the
worker has popped for the first time, the bench sends a single-image request, waits until the horde
holds its finished image, and sends the next one at once, as a requester generating one image after
another would. Each request's latency (created → image stored on the horde) and its wait before it
was popped are measured with this process's monotonic clock, polling the horde's state every 5 ms.
Figures are reported as ratios to the backend's time per job: a ratio of 1.0 would be a worker that
adds nothing to the backend's own time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fake_worker import MODEL, prepare_worker_dir, worker_environment  # noqa: E402
from bench.results import publish  # noqa: E402
from horde_worker_regen.localhorde.config import LocalHordeConfig  # noqa: E402
from horde_worker_regen.localhorde.entities import User, WaitingPrompt  # noqa: E402
from horde_worker_regen.localhorde.requester import queue_request  # noqa: E402
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde  # noqa: E402

POLL_S = 0.005
REQUEST_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Sample:
    """One request: seconds from creation to pop, and to its image stored on the horde."""

    popped_after: float
    latency: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests sent one after another")
    parser.add_argument("--seconds-per-job", type=float, default=1.0, help="fake backend time per job")
    parser.add_argument(
        "--idle-pop-interval",
        type=float,
        default=None,
        help="idle_pop_interval for the worker (default: the template's)",
    )
    parser.add_argument("--size", type=int, default=512, help="image width and height")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    return parser.parse_args(argv)


async def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)  # the horde runs in this loop; its state has no change event


async def one_request(horde: RunningLocalHorde, requester: User, index: int, size: int) -> Sample:
    """Send one request and wait for its image."""
    body = {
        "prompt": f"latency {index}",
        "models": [MODEL],
        "params": {"width": size, "height": size, "steps": 20, "n": 1},
    }
    sent = time.monotonic()
    wp: WaitingPrompt = queue_request(horde.horde, requester, body)
    await _until(lambda: bool(horde.state.generations_of(wp)), REQUEST_TIMEOUT_S, f"request {index} to be popped")
    popped = time.monotonic() - sent
    await _until(
        lambda: all(pg.is_completed for pg in horde.state.generations_of(wp)),
        REQUEST_TIMEOUT_S,
        f"request {index} to be completed",
    )
    return Sample(popped, time.monotonic() - sent)


async def measure(folder: Path, args: argparse.Namespace) -> list[Sample]:
    """Start the worker, wait for its first pop, then run the closed loop; stop the worker."""
    config = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("bench-owner", trusted=True)
        requester = horde.add_user("bench-requester", trusted=True, kudos=10_000_000)
        settings: dict[str, object] = {"dreamer_name": "Latency Dreamer", "stats_output_frequency": 60}
        if args.idle_pop_interval is not None:
            settings["idle_pop_interval"] = args.idle_pop_interval
        args.threads, args.queue_size = 1, 1
        prepare_worker_dir(folder, horde, owner, args, settings)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "horde_worker_regen",
            "run",
            "-q",
            "--logs-dir",
            str(folder / "logs"),
            cwd=folder,
            env=worker_environment(),
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            await _until(lambda: bool(horde.state.workers), READY_TIMEOUT_S, "the worker's first pop")
            return [await one_request(horde, requester, index, args.size) for index in range(args.requests)]
        finally:
            process.send_signal(signal.SIGINT)
            await process.wait()


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def report(samples: list[Sample], args: argparse.Namespace) -> str:
    """The figures as Markdown: latency and wait-before-pop, as ratios to the backend time."""
    backend = args.seconds_per_job
    latencies = [sample.latency for sample in samples]
    waits = [sample.popped_after for sample in samples]
    interval = "template default" if args.idle_pop_interval is None else f"{args.idle_pop_interval:g} s"
    command = (
        f".venv/bin/python -m bench.latency_bench --requests {args.requests} "
        f"--seconds-per-job {args.seconds_per_job:g}"
        + (f" --idle-pop-interval {args.idle_pop_interval:g}" if args.idle_pop_interval is not None else "")
    )
    return "\n".join(
        [
            f"### {datetime.date.today().isoformat()}: closed-loop latency, {args.requests} requests, "
            f"{backend * 1000:.0f} ms per job, idle_pop_interval {interval}",
            "",
            f"Command: `{command}`  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
            f"Python {platform.python_version()}",
            "",
            "| Figure | p50 | p95 | max |",
            "|---|---|---|---|",
            f"| Latency / backend time | {_quantile(latencies, 0.5) / backend:.2f}x | "
            f"{_quantile(latencies, 0.95) / backend:.2f}x | {max(latencies) / backend:.2f}x |",
            f"| Wait before the pop / backend time | {_quantile(waits, 0.5) / backend:.2f}x | "
            f"{_quantile(waits, 0.95) / backend:.2f}x | {max(waits) / backend:.2f}x |",
            f"| Latency, seconds | {_quantile(latencies, 0.5):.2f} | {_quantile(latencies, 0.95):.2f} | "
            f"{max(latencies):.2f} |",
            "",
            f"Mean latency {statistics.fmean(latencies):.2f} s; the first request (after the worker's idle start) "
            f"took {latencies[0]:.2f} s.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()  # the local horde in this process logs every request; keep only its warnings
    logger.add(sys.stderr, level="WARNING")
    folder = Path(tempfile.mkdtemp(prefix="latency-bench-"))
    try:
        samples = asyncio.run(measure(folder, args))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = report(samples, args)
    publish(text, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
