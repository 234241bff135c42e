"""The `local-horde` command: serve the local horde until Ctrl+C.

python -m horde_worker_regen local-horde [--host 127.0.0.1] [--port 7001] [--config FILE] [--logs-dir DIR]
python -m horde_worker_regen.localhorde  (same options)

Besides the API it serves its model reference at `/model_reference/stable_diffusion.json`, so that a
worker pointed at it (`HORDE_MODEL_REFERENCE_URL`, printed at start) needs no internet at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from loguru import logger

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.config import DEFAULT_HOST, DEFAULT_PORT, LocalHordeConfig, UserConfig, load_config
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.reference import BUNDLED_REFERENCE
from horde_worker_regen.logs.setup import configure_logging
from horde_worker_regen.shared.environment import REFERENCE_URL_ENV

DEFAULT_USER = UserConfig(username="localuser", kudos=10_000, trusted=True)
REFERENCE_PATH = "/model_reference/stable_diffusion.json"
DEFAULT_LOGS_DIR = Path("logs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to a (sub)parser."""
    parser.add_argument("--host", default=None, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None, help=f"port to listen on (default {DEFAULT_PORT}; 0: any)")
    parser.add_argument("--config", type=Path, default=None, help="YAML or JSON file with users, models, requests")
    parser.add_argument("--public-url", default=None, help="base used in upload/source URLs (default: as requested)")
    parser.add_argument(
        "--fake-clock", action="store_true", default=None, help="time moves only via POST /_admin/clock"
    )
    parser.add_argument(
        "--logs-dir",
        type=Path,
        default=DEFAULT_LOGS_DIR,
        help="where log files go, as for the worker (default: ./logs)",
    )


def build_config(args: argparse.Namespace) -> LocalHordeConfig:
    """The file's configuration with the command-line overrides applied."""
    config = load_config(args.config) if getattr(args, "config", None) else LocalHordeConfig()
    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
        "fake_clock": getattr(args, "fake_clock", None),
    }
    config = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if not config.users:
        config = config.model_copy(update={"users": [DEFAULT_USER]})
    return config


def _announce(horde: LocalHorde, base_url: str) -> None:
    # Printing the keys is the point of this command: the operator needs them to start a worker.
    print(f"Local horde listening on {base_url}", flush=True)
    print(f"  horde_url for workers: {base_url}/api")
    print(f"  admin API (loopback only): {base_url}/_admin/")
    print(f"  model reference, so that workers need no internet: {REFERENCE_URL_ENV}={base_url}{REFERENCE_PATH}")
    for user in horde.state.users.values():
        if not user.is_anon:
            trust = "trusted" if user.trusted else "untrusted"
            print(f"  user {user.alias} ({trust}, {user.kudos:g} kudos): api_key {user.api_key}", flush=True)


async def serve(config: LocalHordeConfig, on_started: Callable[[str, LocalHorde], None] | None = None) -> None:
    """Serve until cancelled or SIGTERM; `on_started(base_url, horde)` runs once the socket listens.

    Ctrl+C arrives as KeyboardInterrupt through `asyncio.run`; SIGTERM (containers, service
    managers) stops the server the same orderly way.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    horde = LocalHorde(config)
    app = create_app(horde=horde)
    reference_file = Path(config.model_reference) if config.model_reference else BUNDLED_REFERENCE

    async def model_reference(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(reference_file, headers={"Content-Type": "application/json"})

    app.router.add_get(REFERENCE_PATH, model_reference)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        shown_host = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown_host}:{port}"
        _announce(horde, base_url)
        if on_started is not None:
            on_started(base_url, horde)
        await stop.wait()
    finally:
        await runner.cleanup()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def run(args: argparse.Namespace) -> int:
    """Entry point of the `local-horde` subcommand; returns the exit status."""
    try:
        config = build_config(args)
    except (OSError, ValueError) as error:
        logger.error(f"cannot load the local horde configuration: {error}")
        return 2
    with contextlib.suppress(ValueError):
        if not ipaddress.ip_address(config.host).is_loopback:
            logger.warning(f"the local horde listens on {config.host}: anyone who can reach it can use it")
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        logger.error(f"cannot serve the local horde: {error}")
        return 1
    print("Local horde stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m horde_worker_regen.localhorde`."""
    parser = argparse.ArgumentParser(prog="local-horde", description="Serve an embedded AI Horde for tests and demos.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.logs_dir, 0)
    return run(args)
