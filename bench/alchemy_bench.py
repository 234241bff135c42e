"""Alchemy benchmark: forms per minute beside image jobs, and the image slots' duty with alchemy on and off.

    .venv/bin/python -m bench.alchemy_bench [--repeats 3] [--jobs 50] [--seconds-per-job 1.5] [--threads 2]
        [--requests 10] [--forms nsfw,interrogation,caption,RealESRGAN_x2plus] [--seconds-per-form 1.0] [--write]

Each repetition runs the worker twice on the same machine, alchemy off and on (their order alternates
between repetitions, so that a drift of the machine's load falls on both), each against a fresh local
horde in this process. The requests are queued as a requester sends them, over HTTP: `--jobs`
single-image requests through `/v2/generate/async` and, for the run with alchemy, `--requests` through
`/v2/interrogate/async`, each asking for every form of `--forms` on a `--source-size` image. The worker
is the real CLI (`run --burst`, the run ending once neither side has work) with the fake inference
backend (`--seconds-per-job` per image job, `--seconds-per-form` per post-processor form: the
post-processors are there for the scheduling, their time is a knob) and the real horde_safety backend
with random stand-in weights on the CPU (`REGEN_SAFETY_WEIGHTS=random-stand-in`: the image checks and
the nsfw, interrogation and caption forms run the real code on small random CLIP and BLIP models).

Image duty is measured as in `pipeline_bench`: the inference children's own stamps of each image job's
start and end (`inference_finished`), busy time over each slot's first start to last end; a form on a
slot is not image time. The image window is the first image job's start to the last one's end; forms
per minute are counted within it (alchemy while images run) and over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fake_worker import MODEL, add_fake_worker_arguments, prepare_worker_dir, worker_environment  # noqa: E402
from bench.pipeline_bench import Records, load_average, percentile, slot_figures  # noqa: E402
from bench.results import publish  # noqa: E402
from horde_worker_regen.jobs.alchemy import lane_of  # noqa: E402
from horde_worker_regen.localhorde.config import LocalHordeConfig  # noqa: E402
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde  # noqa: E402
from horde_worker_regen.safety.weights import STAND_IN, WEIGHTS_ENV_VAR  # noqa: E402
from horde_worker_regen.worker.event_file import read_event_file  # noqa: E402

DEFAULT_FORMS = "nsfw,interrogation,caption,RealESRGAN_x2plus"
DUTY_LIMIT = 0.95  # the bar: image duty with alchemy at least 95 % of the duty without
WORKER_TIMEOUT_S = 900.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fake_worker_arguments(parser, jobs=50, seconds_per_job=1.5, queue_size=1, size=512)
    parser.add_argument("--requests", type=int, default=10, help="alchemy requests queued (each asks for --forms)")
    parser.add_argument("--forms", default=DEFAULT_FORMS, help="the forms each alchemy request asks for, by comma")
    parser.add_argument("--seconds-per-form", type=float, default=1.0, help="fake time per post-processor form")
    parser.add_argument("--source-size", type=int, default=256, help="the alchemy source image's width and height")
    parser.add_argument("--max-concurrency", type=int, default=1, help="alchemy_max_concurrency")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (alchemy off and on)")
    return parser.parse_args(argv)


def form_names(args: argparse.Namespace) -> list[str]:
    """The forms of `--forms`."""
    return [name.strip() for name in args.forms.split(",") if name.strip()]


def source_b64(size: int) -> str:
    """A generated picture (no file, no network) as base64 WebP, the way a requester sends one."""
    image = Image.new("RGB", (size, size), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 200, 60))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


async def post(session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]) -> None:
    """One requester call; SystemExit if the horde refuses it."""
    async with session.post(url, json=body, headers={"apikey": key}) as response:
        if response.status != 202:
            raise SystemExit(f"the local horde refused {url}: {response.status} {await response.text()}")


async def queue_over_http(horde: RunningLocalHorde, key: str, args: argparse.Namespace, alchemy: bool) -> None:
    """The image requests, then (with alchemy) the interrogation requests, through the requester API."""
    params = {"width": args.size, "height": args.size, "steps": 30, "n": 1}
    source = source_b64(args.source_size)
    forms = [{"name": name} for name in form_names(args)]
    async with aiohttp.ClientSession() as session:
        for index in range(args.jobs):
            body = {"prompt": f"alchemy bench {index}", "models": [MODEL], "params": params}
            await post(session, f"{horde.api_url}/v2/generate/async", key, body)
        for _ in range(args.requests if alchemy else 0):
            await post(session, f"{horde.api_url}/v2/interrogate/async", key, {"forms": forms, "source_image": source})


def worker_settings(args: argparse.Namespace, alchemy: bool) -> dict[str, Any]:
    """The bench's bridgeData keys: the real safety backend, and the alchemist on or off."""
    settings: dict[str, Any] = {
        "dreamer_name": "Bench Dreamer", "stats_output_frequency": 30, "safety_backend": "horde_safety",
        "dashboard_port": 0,  # any free port: never in the way of another worker on this machine
        "fake_backend": {"seconds_per_form": args.seconds_per_form},
    }  # fmt: skip
    if alchemy:
        settings |= {
            "alchemist": True, "alchemist_name": "Bench Alchemist", "forms": form_names(args),
            "alchemy_caption_enabled": "caption" in form_names(args), "alchemy_max_concurrency": args.max_concurrency,
        }  # fmt: skip
    return settings


async def run_worker(folder: Path, args: argparse.Namespace, alchemy: bool) -> tuple[Records, float]:
    """Queue the work and run the worker until both sides have none; its event records and the wall time."""
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("bench-owner", trusted=True)
        requester = horde.add_user("bench-requester", trusted=True, kudos=10_000_000)
        await queue_over_http(horde, requester.api_key, args, alchemy)
        prepare_worker_dir(folder, horde, owner, args, worker_settings(args, alchemy))
        (folder / "bridgeData.yaml").chmod(0o600)  # it holds the owner's key
        metrics = folder / "metrics.jsonl"
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "horde_worker_regen", "run", "--burst", "-q", "--logs-dir", str(folder / "logs"),
            "--metrics-file", str(metrics), cwd=folder, env=worker_environment() | {WEIGHTS_ENV_VAR: STAND_IN},
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        status = await asyncio.wait_for(process.wait(), WORKER_TIMEOUT_S)
        wall = time.monotonic() - started
        if status != 0:
            raise SystemExit(f"the worker exited with status {status}; see {folder / 'logs'}")
        submitted = sum(1 for pg in horde.state.generations.values() if pg.is_completed and not pg.faulted)
        if submitted != args.jobs:
            raise SystemExit(f"only {submitted} of {args.jobs} images were submitted; see {folder / 'logs'}")
    return read_event_file(metrics), wall


@dataclass(frozen=True)
class RunFigures:
    """What one run measured."""

    alchemy: bool
    duty: float  # image busy / each slot's first start to last end
    window_s: float  # first image job's start to the last one's end
    images_per_min: float  # over the image window
    forms_in_window: int  # forms submitted while image jobs ran
    forms_in_window_by_lane: dict[str, int]
    forms_submitted: int
    forms_faulted: int
    forms_span_s: float  # first form popped to last form ended
    check_wait_s: tuple[float, float]  # p50, p95 of an image job's inference end to its safety verdict
    wall_s: float


def image_window(records: Records) -> tuple[float, float]:
    """The first image job's start and the last one's end (the children's clocks: the machine's monotonic)."""
    timed = [r for r in records if r["kind"] == "inference_finished" and r.get("started_at") is not None]
    return min(float(r["started_at"]) for r in timed), max(float(r["finished_at"]) for r in timed)


def check_waits(records: Records) -> tuple[float, float]:
    """p50 and p95 of the time from an image job's inference end to its safety verdict (both main-process
    stamps): what the safety child's queue, analysis forms included, costs an image job."""
    finished = {r["job"]: float(r["at"]) for r in records if r["kind"] == "inference_finished" and "job" in r}
    waits = [
        float(r["at"]) - finished[r["job"]] for r in records if r["kind"] == "job_checked" and r["job"] in finished
    ]
    return (percentile(waits, 0.5), percentile(waits, 0.95)) if waits else (float("nan"), float("nan"))


def run_figures(records: Records, wall: float, alchemy: bool) -> RunFigures:
    """The figures of one run, from its event records."""
    start, end = image_window(records)
    images = sum(1 for r in records if r["kind"] == "job_ended" and r.get("state") == "submitted")
    ended = [r for r in records if r["kind"] == "form_ended"]
    submitted = [r for r in ended if r.get("state") == "submitted"]
    in_window = [r for r in submitted if start <= float(r["at"]) <= end]
    by_lane: dict[str, int] = {}
    for record in in_window:
        lane = lane_of(str(record["form"]))
        by_lane[lane] = by_lane.get(lane, 0) + 1
    popped = [float(r["at"]) for r in records if r["kind"] == "form_popped"]
    span = max(float(r["at"]) for r in ended) - min(popped) if ended and popped else 0.0
    return RunFigures(
        alchemy=alchemy, duty=slot_figures(records)["duty_span"], window_s=end - start,
        images_per_min=60 * images / (end - start), forms_in_window=len(in_window), forms_in_window_by_lane=by_lane,
        forms_submitted=len(submitted), forms_faulted=len(ended) - len(submitted), forms_span_s=span,
        check_wait_s=check_waits(records), wall_s=wall,
    )  # fmt: skip


def spread(values: list[float], fmt: str = ".4f") -> str:
    """`median (min-max)` of the values."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def command_line(args: argparse.Namespace) -> str:
    """The exact command that reproduces the figures."""
    return (
        f".venv/bin/python -m bench.alchemy_bench --repeats {args.repeats} --jobs {args.jobs} "
        f"--seconds-per-job {args.seconds_per_job} --threads {args.threads} --queue-size {args.queue_size} "
        f"--size {args.size} --requests {args.requests} --forms {','.join(form_names(args))} "
        f"--seconds-per-form {args.seconds_per_form} --source-size {args.source_size} "
        f"--max-concurrency {args.max_concurrency}"
    )


def pair_rows(pairs: list[tuple[RunFigures, RunFigures]]) -> list[str]:
    """One table row per repetition: the run without alchemy beside the run with it."""
    rows = [
        "| Pair | Duty off | Duty on | On / off | Images/min off / on | Forms in image window (analysis + "
        "post-processing) | Forms/min in window | Forms submitted / faulted | Forms/min over the run | "
        "Image check wait p50 / p95, off | on | Wall off / on |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, (off, on) in enumerate(pairs, start=1):
        lanes = on.forms_in_window_by_lane
        rows.append(
            f"| {index} | {off.duty:.4f} | {on.duty:.4f} | {on.duty / off.duty:.4f} | "
            f"{off.images_per_min:.1f} / {on.images_per_min:.1f} | {on.forms_in_window} "
            f"({lanes.get('analysis', 0)} + {lanes.get('post_processing', 0)}) | "
            f"{60 * on.forms_in_window / on.window_s:.1f} | {on.forms_submitted} / {on.forms_faulted} | "
            f"{60 * on.forms_submitted / max(on.forms_span_s, 1e-9):.1f} | {waits(off)} | {waits(on)} | "
            f"{off.wall_s:.1f} / {on.wall_s:.1f} s |"
        )
    return rows


def waits(run: RunFigures) -> str:
    """The image check wait's p50 / p95."""
    return f"{run.check_wait_s[0]:.2f} / {run.check_wait_s[1]:.2f} s"


def summary_rows(pairs: list[tuple[RunFigures, RunFigures]]) -> list[str]:
    """Medians and ranges over the repetitions, and the verdict against the issue's 5 % bar."""
    ratios = [on.duty / off.duty for off, on in pairs]
    rates = [on.images_per_min / off.images_per_min for off, on in pairs]
    in_window = [60 * on.forms_in_window / on.window_s for _, on in pairs]
    verdict = "meets" if min(ratios) >= DUTY_LIMIT else "MISSES"
    return [
        "| Figure, over the pairs | Median (min-max) |",
        "|---|---|",
        f"| Image duty, alchemy off | {spread([off.duty for off, _ in pairs])} |",
        f"| Image duty, alchemy on | {spread([on.duty for _, on in pairs])} |",
        f"| Duty ratio on / off | {spread(ratios)} |",
        f"| Image jobs per minute ratio on / off | {spread(rates)} |",
        f"| Forms per minute while image jobs ran | {spread(in_window, '.1f')} |",
        "",
        f"The lowest duty ratio, {min(ratios):.4f}, {verdict} the bar (image duty with alchemy at least "
        f"{DUTY_LIMIT:.2f} of the duty without, in every pair).",
    ]


def report(pairs: list[tuple[RunFigures, RunFigures]], args: argparse.Namespace, load: tuple[str, str]) -> str:
    """The figures as Markdown."""
    lines = [
        f"### {datetime.date.today().isoformat()}: alchemy beside image jobs, {len(pairs)} pairs of runs "
        f"(alchemy off / on), {args.threads} slots, {args.seconds_per_job * 1000:.0f} ms per image job",
        "",
        f"Command: `{command_line(args)}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}  ",
        f"Load average (1 / 5 / 15 min, the runs' own included): {load[0]} before, {load[1]} after  ",
        f"Each alchemy request asks for {', '.join(form_names(args))} on a {args.source_size} px source; "
        "nsfw, interrogation and caption run the real horde_safety code with random stand-in weights on "
        f"the CPU, post-processors are the fake backend's ({args.seconds_per_form} s each, a scheduling knob).",
        "",
        *pair_rows(pairs),
        "",
        *summary_rows(pairs),
        "",
    ]
    return "\n".join(lines)


def run_pair(root: Path, args: argparse.Namespace, index: int) -> tuple[RunFigures, RunFigures]:
    """Alchemy off and on (in alternating order); the run without alchemy first in the pair returned."""
    figures: dict[bool, RunFigures] = {}
    for alchemy in (False, True) if index % 2 == 0 else (True, False):
        folder = root / f"pair-{index + 1}-{'on' if alchemy else 'off'}"
        folder.mkdir(parents=True)
        records, wall = asyncio.run(run_worker(folder, args, alchemy))
        figures[alchemy] = run_figures(records, wall, alchemy)
        print(f"pair {index + 1}, alchemy {'on' if alchemy else 'off'}: duty {figures[alchemy].duty:.4f}", flush=True)
    return figures[False], figures[True]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()  # the local horde in this process logs every request; keep only its warnings
    logger.add(sys.stderr, level="WARNING")
    root = args.keep or Path(tempfile.mkdtemp(prefix="alchemy-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    pairs = [run_pair(root, args, index) for index in range(args.repeats)]
    publish(report(pairs, args, (load_before, load_average())), write=args.write)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
