"""`run`: start the worker.

Start-up runs in order, each step able to stop with a clear message: configuration,
logging, the checks `check-config` makes too (`startup_checks`: key and name, backends, models,
custom models' files, GPU settings), the horde identity check, the safety model, then the worker
itself (`orchestrator.Worker`: child processes, popper, submitter, status).
SIGINT or SIGTERM before the worker runs ends the start-up where it is, with exit 0 (`stop_signals`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

import aiohttp
from loguru import logger

from horde_worker_regen.commands.startup_checks import CheckedStart, StartupError, check_startup, is_public_horde
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.loader import ResolvedConfig
from horde_worker_regen.config.notes import notes_summary
from horde_worker_regen.horde.identity import HordeUnreachable, IdentityError, describe_user, find_user
from horde_worker_regen.inference.capabilities import capabilities_of
from horde_worker_regen.logs.setup import configure_logging
from horde_worker_regen.models.meta_instructions import ModelSelection
from horde_worker_regen.safety.weights import SafetyWeightsUnavailable, prepare_safety_backend
from horde_worker_regen.tui.console_tail import ConsoleTail
from horde_worker_regen.tui.in_process import run_with_tui
from horde_worker_regen.worker.orchestrator import RunOptions, Worker
from horde_worker_regen.worker.stop_signals import stop_signals

EXIT_OK = 0
EXIT_STARTUP_FAILED = 1


def _report_config(resolved: ResolvedConfig) -> None:
    data = resolved.data
    source = resolved.path if resolved.file_found else "AIWORKER_* environment variables"
    logger.info(f"Configuration read from {source}.")
    summary = notes_summary(resolved.notes)
    if summary is not None:
        logger.info(summary)
    for note in resolved.notes:
        logger.debug(f"{note.key} {note.message}")
    logger.info(
        f"Worker '{data.dreamer_name}' at {data.horde_url}: max_threads={data.max_threads}, "
        f"queue_size={data.queue_size}, max_batch={data.max_batch}, max_power={data.max_power} "
        f"({data.max_pixels:,} pixels)."
    )


def _report_selection(selection: ModelSelection) -> None:
    for name, closest in selection.unknown.items():
        hint = f"closest known: {', '.join(closest)}" if closest else "no similar name is known"
        logger.warning(f"Model '{name}' is not in the model reference and will not be served ({hint}).")
    for note in selection.notes:
        logger.info(note)
    if not selection.models:
        return  # refused by the start-up checks, with what to change
    shown = ", ".join(selection.models[:10]) + (" ..." if len(selection.models) > 10 else "")
    logger.info(f"{len(selection.models)} models selected: {shown}")


async def preflight(data: BridgeData) -> bool:
    """The start-up check that needs the horde: the owner's identity.

    A refused key stops the start. A horde that cannot be asked does not: the worker starts anyway
    (its processes warm up, the popper retries with backoff, the dashboard says "horde unreachable")
    and checks the key once the horde answers. Returns whether the key was checked now."""
    logger.debug(f"Checking the API key with {data.horde_url}v2/find_user")
    async with aiohttp.ClientSession() as session:
        try:
            user = await find_user(data, session)
        except HordeUnreachable as error:
            logger.warning(
                f"{error}; starting anyway: popping waits and retries with backoff (at most "
                f"{data.horde_backoff_cap:.0f}s between tries) and the API key is checked once it answers"
            )
            return False
        except IdentityError as error:
            raise StartupError(str(error)) from None
    logger.info(describe_user(user))
    return True


def _report_backends(data: BridgeData) -> None:
    capabilities = capabilities_of(data.inference_backend)
    logger.info(
        f"Inference backend '{capabilities.name}' (implements reGen capability levels up to {capabilities.version}; "
        "the level claimed follows what is servable here, see the 'Bridge level' line), "
        f"safety backend '{data.safety_backend}'."
    )


async def prepare_safety(data: BridgeData) -> None:
    """The safety model's files (fetched once), or a stop: a worker that cannot check images must not serve."""
    try:
        await prepare_safety_backend(data.safety_backend, data.cache_home, public_horde=is_public_horde(data.horde_url))
    except SafetyWeightsUnavailable as error:
        raise StartupError(str(error)) from None


@dataclass
class _StartupStop:
    """A stop signal during the start-up checks: cancel them (a download or a request under way included)."""

    task: asyncio.Task[int]
    signum: int | None = None

    def on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            self.task.cancel()


async def _checks(data: BridgeData) -> tuple[CheckedStart, bool]:
    """The start-up checks in order; what they found and whether the API key was checked."""
    checked = await check_startup(data, _report_selection)  # the refusals check-config shares
    _report_backends(data)
    identity_checked = await preflight(data)
    await prepare_safety(data)
    return checked, identity_checked


async def start_and_run(
    data: BridgeData, options: RunOptions, on_worker: Callable[[Worker], None] | None = None
) -> int:
    """The start-up checks, then the worker until it stops (`on_worker` told of it first); returns the exit status."""
    task = asyncio.current_task()
    assert task is not None
    stop = _StartupStop(task)
    stop_signals.route_to(asyncio.get_running_loop(), stop.on_signal)
    try:
        checked, identity_checked = await _checks(data)
    except asyncio.CancelledError:
        if stop.signum is None:
            raise
        task.uncancel()
        logger.info(f"{signal.Signals(stop.signum).name} received during the start-up checks; stopping")
        return EXIT_OK
    # The worker takes the signals over before its first await: none can fall between the two.
    worker = Worker(data, checked.selection.models, options, identity_checked=identity_checked, devices=checked.devices)
    if on_worker is not None:
        on_worker(worker)
    return await worker.run()


def run_command(args: argparse.Namespace) -> int:
    """Start the worker; returns the exit status."""
    from horde_worker_regen.commands.resolve import resolve_config

    resolved = resolve_config(args)
    logs_dir = Path(args.logs_dir)
    tail = ConsoleTail(sys.stderr) if getattr(args, "tui", False) else None
    # The console sink only writes, flushes and asks isatty: what ConsoleTail does of a stream.
    console = cast(TextIO, tail) if tail is not None else None
    configure_logging(logs_dir, args.verbosity, secrets=resolved.data.secrets(), console_stream=console)
    _report_config(resolved)
    options = RunOptions(logs_dir=logs_dir, verbosity=args.verbosity, burst=args.burst, metrics_file=args.metrics_file,
                         console_log=tail is None)  # fmt: skip
    try:
        if tail is None:
            status = asyncio.run(start_and_run(resolved.data, options))
        else:
            status = asyncio.run(run_with_tui(lambda on_worker: start_and_run(resolved.data, options, on_worker), tail))
    except StartupError as error:
        logger.error(f"Cannot start: {error}")
        return EXIT_STARTUP_FAILED
    finally:
        stop_signals.ignore()  # stopping already: a late signal must not cut the exit short
    logger.info(f"Worker stopped (exit status {status}).")
    return status
