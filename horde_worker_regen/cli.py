"""The worker's command line: `python -m horde_worker_regen [SUBCOMMAND] [OPTIONS]`.

`run` is the default subcommand, so `horde-bridge.sh -n "My Dreamer"` starts the worker.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from horde_worker_regen import __version__
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import ResolvedConfig, cli_settings, load_config
from horde_worker_regen.logging import configure_logging, install_process_hooks
from horde_worker_regen.logs.exposure import holds_secret, warn_if_exposed

DEFAULT_COMMAND = "run"
EXIT_CONFIG_ERROR = 2
# Options of the worker commands that take a value, so that the value is never mistaken
# for a subcommand name when the subcommand is looked for.
_VALUE_OPTIONS = frozenset({"-c", "--config", "-n", "--name", "--set", "--logs-dir", "--metrics-file"})


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that read bridgeData."""
    parser.add_argument(
        "-c", "--config", type=Path, default=Path("bridgeData.yaml"),
        help="the bridgeData file to read (default: ./bridgeData.yaml)",
    )
    parser.add_argument("-n", "--name", help="worker name; overrides dreamer_name from the file and env")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any bridgeData key, e.g. --set max_threads=2 (repeatable; wins over file and env)",
    )
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"), help="where log files go (default: ./logs)")
    _add_verbosity(parser)


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-v debug, -vv trace)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less output (-q warnings, -qq errors)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from horde_worker_regen.commands import benchmark, check_config, demo, download_models, run
    from horde_worker_regen.localhorde import command as local_horde

    parser = argparse.ArgumentParser(
        prog="horde-worker-regen",
        description="An AI Horde image worker. Without a subcommand, 'run' is assumed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    run_parser = commands.add_parser("run", help="start the worker (default)")
    _add_worker_options(run_parser)
    run_parser.add_argument(
        "--burst", action="store_true",
        help="stop (exit 0) once the horde has no job and nothing is in flight; for tests and trial runs",
    )
    run_parser.add_argument(
        "--metrics-file", type=Path, default=None, metavar="PATH",
        help="write every job's timings and the main process's CPU/RSS as JSON here at exit (benchmarks)",
    )
    run_parser.set_defaults(handler=run.run_command, reads_bridge_data=True)
    check_parser = commands.add_parser("check-config", help="validate bridgeData and print the resolved settings")
    _add_worker_options(check_parser)
    check_parser.add_argument(
        "--no-models", action="store_true", help="skip resolving models_to_load against the model reference"
    )
    check_parser.set_defaults(handler=check_config.check_config_command, reads_bridge_data=True)
    download_parser = commands.add_parser(
        "download-models", help="download and verify the configured models, then exit (no serving)")
    _add_worker_options(download_parser)
    download_parser.set_defaults(handler=download_models.download_models_command, reads_bridge_data=True)
    demo_parser = commands.add_parser(
        "demo", help="try everything locally: a local horde, demo requests, the worker, images saved (no network)")
    demo.add_arguments(demo_parser)
    _add_verbosity(demo_parser)
    demo_parser.set_defaults(handler=demo.demo_command)
    benchmark_parser = commands.add_parser(
        "benchmark", help="measure this machine against a local horde and recommend max_power, max_batch, max_threads")
    benchmark.add_arguments(benchmark_parser)
    _add_verbosity(benchmark_parser)
    benchmark_parser.set_defaults(handler=benchmark.benchmark_command)
    local_parser = commands.add_parser("local-horde", help="serve a local AI Horde for tests and trial runs")
    local_horde.add_arguments(local_parser)
    _add_verbosity(local_parser)
    local_parser.set_defaults(handler=local_horde.run)
    return parser


def with_default_command(argv: list[str], commands: set[str]) -> list[str]:
    """The arguments with the subcommand moved to the front, or `run` inserted if none is named."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in _VALUE_OPTIONS:
            index += 2
            continue
        if token in {"-h", "--help", "--version"} and index == 0:
            return argv
        if not token.startswith("-"):
            if token in commands:
                return [token, *argv[:index], *argv[index + 1:]]
            break
        index += 1
    return [DEFAULT_COMMAND, *argv]


def resolve_config(args: argparse.Namespace) -> ResolvedConfig:
    """The configuration from the file, then AIWORKER_* env vars, then CLI flags."""
    resolved = load_config(args.config, os.environ, cli_settings(args.set, args.name))
    warn_if_exposed(resolved.path, holds_secret({name: resolved.source_of(name) for name in resolved.settings}))
    return resolved


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand; returns the exit status."""
    install_process_hooks()  # first: whatever is printed or raised from here on is redacted
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(with_default_command(raw_argv, set(subparsers.choices)))
    args.verbosity = args.verbose - args.quiet
    handler: Callable[[argparse.Namespace], int] = args.handler
    if not getattr(args, "reads_bridge_data", False):
        configure_logging(Path("logs"), args.verbosity)
        return handler(args)
    try:
        return handler(args)
    except ConfigError as error:
        # Logging may not be set up yet (the config decides the secrets), so print plainly.
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG_ERROR
