"""What the fake-backend benches share: their options, the worker's folder, the queued requests, its environment.

Both `pipeline_bench` and `soak_bench` run the real worker CLI with the fake backends against the
embedded local horde; only their settings and what they measure differ.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.models.reference_cache import ReferencePaths

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
MODEL = "Deliberate"


def add_fake_worker_arguments(
    parser: argparse.ArgumentParser, *, jobs: int, seconds_per_job: float, queue_size: int, size: int
) -> None:
    """The options every fake-backend bench takes, with that bench's defaults."""
    parser.add_argument("--jobs", type=int, default=jobs, help="requests queued (one image each)")
    parser.add_argument("--seconds-per-job", type=float, default=seconds_per_job, help="fake backend time per job")
    parser.add_argument("--threads", type=int, default=2, help="max_threads (inference slots)")
    parser.add_argument("--queue-size", type=int, default=queue_size, help="queue_size (jobs held ready)")
    parser.add_argument("--size", type=int, default=size, help="image width and height")
    parser.add_argument("--keep", type=Path, default=None, help="keep the worker folder (logs, metrics) here")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")


def prepare_worker_dir(
    folder: Path, horde: RunningLocalHorde, owner: User, args: argparse.Namespace, settings: dict[str, Any]
) -> None:
    """bridgeData.yaml and a cached model reference, as an operator's folder would hold them.

    `settings` (the bench's own keys) win over the common ones; a `fake_backend` block is merged.
    """
    paths = ReferencePaths(folder / "models")
    paths.reference.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    data = yaml.safe_load((REPO_ROOT / "bridgeData_template.yaml").read_text())
    data.update({
        "api_key": owner.api_key, "horde_url": horde.api_url, "cache_home": str(paths.cache_home),
        "models_to_load": [MODEL], "max_threads": args.threads, "queue_size": args.queue_size, "max_batch": 1,
        "max_power": max(8, args.size * args.size // (8 * 64 * 64)), "inference_backend": "fake",
        "safety_backend": "fake",
    })  # fmt: skip
    fake_backend = {"seconds_per_job": args.seconds_per_job, **settings.pop("fake_backend", {})}
    data.update(settings)
    data["fake_backend"] = fake_backend
    (folder / "bridgeData.yaml").write_text(yaml.safe_dump(data))


def queue_requests(
    horde: RunningLocalHorde, requester: User, args: argparse.Namespace, prompt: str, steps: int
) -> None:
    """`args.jobs` single-image requests of `args.size` pixels square for MODEL."""
    for index in range(args.jobs):
        body = {
            "prompt": f"{prompt} {index}",
            "models": [MODEL],
            "params": {"width": args.size, "height": args.size, "steps": steps, "n": 1},
        }
        queue_request(horde.horde, requester, body)


def worker_environment() -> dict[str, str]:
    """This environment without AIWORKER_* overrides, importing this checkout, never fetching the reference."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
    return environ
