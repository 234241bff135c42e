"""The model the demo serves (a Stable Diffusion 1.5 model on disk, else the random-weight test model),
its model reference on a local port, and the safety weights it runs with."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.safety.weights import STAND_IN, WEIGHTS_ENV_VAR, missing_files, safety_folder

DEMO_BASELINE = "stable diffusion 1"
REFERENCE_FILE = Path(__file__).resolve().parent.parent / "localhorde" / "stable_diffusion.json"
FAKE_MODEL = "Deliberate"  # any name the model reference knows; the fake backend needs no file


@dataclass(frozen=True)
class DemoModel:
    """What the demo serves: a model name, its file and model-reference entry (None with the fake backend),
    and whether it makes noise."""

    name: str
    path: Path | None
    noise: bool
    reference_entry: dict[str, Any] | None = None


def demo_cache_home(cache_home: Path) -> Path:
    """The demo's own models folder (`<cache_home>/demo`): its test model and reference never mix with an
    operator's cached model reference and models."""
    return cache_home.resolve() / "demo"


def find_real_model(cache_home: Path) -> DemoModel | None:
    """A Stable Diffusion 1.5 model of the operator's cached model reference whose file is on disk, if any."""
    root = cache_home.resolve()
    reference_file = ReferencePaths(root).reference
    try:
        reference = json.loads(reference_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for name, entry in sorted(reference.items()) if isinstance(reference, dict) else ():
        if not isinstance(entry, dict) or entry.get("baseline") != DEMO_BASELINE or entry.get("inpainting"):
            continue
        for file in entry.get("config", {}).get("files", []):
            path = root / "compvis" / str(file.get("path", ""))
            if path.suffix in {".safetensors", ".ckpt"} and path.is_file():
                local = {**entry, "config": {"files": [{"path": str(path)}], "download": []}}
                return DemoModel(name, path, noise=False, reference_entry=local)
    return None


def prepare_model(cache_home: Path, fake: bool) -> DemoModel:
    """A real SD 1.5 model already on disk; else the test checkpoint (built once, cached in the demo's
    folder); or a name for the fake backend."""
    if fake:
        return DemoModel(FAKE_MODEL, None, noise=True)
    if (real := find_real_model(cache_home)) is not None:
        print(f"Using the model '{real.name}' found on disk ({real.path}).", flush=True)
        return real
    from horde_worker_regen.models.test_checkpoint import checkpoint_path, ensure_test_checkpoint

    folder = demo_cache_home(cache_home)
    if checkpoint_path(folder).exists():
        print(
            f"No Stable Diffusion 1.5 model found in {cache_home.resolve()}: using the random-weight test model "
            f"built earlier ({checkpoint_path(folder)}).",
            flush=True,
        )
        checkpoint = ensure_test_checkpoint(folder)
    else:
        print(
            f"No Stable Diffusion 1.5 model found in {cache_home.resolve()}: building (once) the random-weight "
            "test model...",
            flush=True,
        )
        started = time.monotonic()
        checkpoint = ensure_test_checkpoint(folder)
        print(f"Test model ready in {time.monotonic() - started:.0f}s: {checkpoint.path}", flush=True)
    return DemoModel(checkpoint.name, checkpoint.path, noise=True, reference_entry=checkpoint.reference_entry)


def safety_environment(cache_home: Path, fake: bool) -> dict[str, str]:
    """The real safety weights when all are on disk; otherwise the announced random stand-in."""
    if fake or not missing_files(safety_folder(cache_home, "download")):
        return {}
    print(
        "The safety model's weights are not on disk (and are not downloaded for the demo): the NSFW/CSAM "
        "check runs with random stand-in weights, so its verdicts mean nothing here.",
        flush=True,
    )
    return {WEIGHTS_ENV_VAR: STAND_IN}


@contextlib.asynccontextmanager
async def serve_reference(model: DemoModel) -> AsyncIterator[str]:
    """The model reference on a local port, so the worker's start-up never reaches for GitHub: the demo
    model's entry alone (its file on disk), or the local horde's names for the fake backend."""

    async def reference(_: web.Request) -> web.StreamResponse:
        if model.reference_entry is None:
            return web.FileResponse(REFERENCE_FILE)
        return web.json_response({model.name: model.reference_entry})

    app = web.Application()
    app.router.add_get("/stable_diffusion.json", reference)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/stable_diffusion.json"
    finally:
        await runner.cleanup()
