"""The worker's command line: `python -m horde_worker_regen [SUBCOMMAND] [OPTIONS]`.

`run` is the default subcommand, so `horde-bridge.sh -n "My Dreamer"` starts the worker, and `--local`
is short for `demo`. A mistyped subcommand or option is refused (exit 2) with the closest valid one.
"""

from __future__ import annotations

import argparse
import difflib
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from horde_worker_regen import __version__
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.logs.setup import configure_logging, install_process_hooks
from horde_worker_regen.worker.stop_signals import StopRequested

PROG = "horde-worker-regen"
DEFAULT_COMMAND = "run"
LOCAL_FLAG, LOCAL_COMMAND = "--local", "demo"
EXIT_OK = 0
EXIT_CONFIG_ERROR = 2
EXIT_USAGE = 2
# Options of the worker commands that take a value, so that the value is never mistaken
# for a subcommand name when the subcommand is looked for.
_VALUE_OPTIONS = frozenset(
    {"-c", "--config", "-n", "--name", "--set", "--logs-dir", "--metrics-file", "--url", "--token", "--interval"}
)
# Options that take no value: a bare word after one of them is meant as a subcommand.
_FLAG_OPTIONS = re.compile(r"^(-[vq]+|--verbose|--quiet|--burst|--tui|--no-models|--.+=.*)$")


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that read bridgeData."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("bridgeData.yaml"),
        help="the bridgeData file to read (default: ./bridgeData.yaml)",
    )
    parser.add_argument("-n", "--name", help="worker name; overrides dreamer_name from the file and env")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any bridgeData key, e.g. --set max_threads=2 (repeatable; wins over file and env)",
    )
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"), help="where log files go (default: ./logs)")
    _add_verbosity(parser)


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-v debug, -vv trace)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less output (-q warnings, -qq errors)")


def _add_daily_options_help(parser: argparse.ArgumentParser) -> None:
    """The options people use every day, shown by the top-level --help (they belong to `run`, the default)."""
    group = parser.add_argument_group(
        "options of run (the default subcommand; `SUBCOMMAND --help` lists each subcommand's own)"
    )
    shown: list[tuple[list[str], dict[str, object]]] = [
        (["-c", "--config"], {"metavar": "FILE", "help": "the bridgeData file to read (default: ./bridgeData.yaml)"}),
        (["-n", "--name"], {"metavar": "NAME", "help": "worker name; overrides dreamer_name from the file and env"}),
        (["--set"], {"metavar": "KEY=VALUE", "help": "override any bridgeData key, e.g. --set max_threads=2"}),
        (["-v", "--verbose"], {"action": "store_true", "help": "more detail (-v debug, -vv trace)"}),
        (["-q", "--quiet"], {"action": "store_true", "help": "less output (-q warnings, -qq errors)"}),
        (
            [LOCAL_FLAG],
            {
                "action": "store_true",
                "help": "the demo: a local horde, demo requests, the worker, images saved (= demo)",
            },
        ),
    ]
    for flags, options in shown:
        # Never parsed here: the arguments are handed to the subcommand (see `with_default_command`).
        group.add_argument(*flags, dest=f"_shown_{flags[-1].lstrip('-')}", default=argparse.SUPPRESS, **options)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An AI Horde image worker. Without a subcommand, 'run' is assumed.",
        epilog="Examples: horde-worker-regen -n 'My Dreamer' | horde-worker-regen check-config | "
        "horde-worker-regen --local",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_daily_options_help(parser)
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    _add_run_command(commands)
    _add_config_commands(commands)
    _add_tool_commands(commands)
    return parser


def _add_run_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from horde_worker_regen.commands import run

    run_parser = commands.add_parser("run", help="start the worker (default)")
    _add_worker_options(run_parser)
    run_parser.add_argument(
        "--burst",
        action="store_true",
        help="stop (exit 0) once the horde has no job and nothing is in flight; for tests and trial runs",
    )
    run_parser.add_argument(
        "--metrics-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=(
            "write the event log here as JSON lines, as it happens: every job's pop, stages, faults, retries "
            "and end, each child's start and loss, and the main process's CPU/RSS and kudos at exit"
        ),
    )
    run_parser.add_argument(
        "--tui",
        action="store_true",
        help="show the terminal UI instead of the scrolling console (the log still goes to its files); "
        "q asks, then stops the worker as Ctrl+C does",
    )
    run_parser.set_defaults(handler=run.run_command, reads_bridge_data=True)


def _add_config_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The subcommands that read bridgeData and do one thing with it, then exit."""
    from horde_worker_regen.commands import check_config, download_models, support_bundle

    check_parser = commands.add_parser("check-config", help="validate bridgeData and print the resolved settings")
    _add_worker_options(check_parser)
    check_parser.add_argument(
        "--no-models", action="store_true", help="skip resolving models_to_load against the model reference"
    )
    check_parser.set_defaults(handler=check_config.check_config_command, reads_bridge_data=True)
    download_parser = commands.add_parser(
        "download-models", help="download and verify the configured models, then exit (no serving)"
    )
    _add_worker_options(download_parser)
    download_parser.set_defaults(handler=download_models.download_models_command, reads_bridge_data=True)
    bundle_parser = commands.add_parser(
        "support-bundle",
        help="write one zip of what a maintainer needs to diagnose a problem (config, logs, versions), no secrets",
    )
    _add_worker_options(bundle_parser)
    support_bundle.add_arguments(bundle_parser)
    bundle_parser.set_defaults(handler=support_bundle.support_bundle_command)


def _add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The demo, the benchmark, the terminal UI and the local horde."""
    from horde_worker_regen.commands import benchmark, demo, tui
    from horde_worker_regen.localhorde import command as local_horde

    demo_parser = commands.add_parser(
        "demo", help="try everything locally: a local horde, demo requests, the worker, images saved (no network)"
    )
    demo.add_arguments(demo_parser)
    _add_verbosity(demo_parser)
    demo_parser.set_defaults(handler=demo.demo_command)
    benchmark_parser = commands.add_parser(
        "benchmark", help="measure this machine against a local horde and recommend max_power, max_batch, max_threads"
    )
    benchmark.add_arguments(benchmark_parser)
    _add_verbosity(benchmark_parser)
    benchmark_parser.set_defaults(handler=benchmark.benchmark_command)
    tui_parser = commands.add_parser(
        "tui", help="watch a running worker in the terminal (its dashboard's status API); q leaves it running"
    )
    tui.add_arguments(tui_parser)
    tui_parser.set_defaults(handler=tui.tui_command, reads_bridge_data=True, verbose=0, quiet=0)
    local_parser = commands.add_parser("local-horde", help="serve a local AI Horde for tests and trial runs")
    local_horde.add_arguments(local_parser)
    _add_verbosity(local_parser)
    local_parser.set_defaults(handler=local_horde.run)


class UsageError(Exception):
    """The command line names a subcommand or option that does not exist."""


def _closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_command_message(token: str, commands: Iterable[str]) -> str:
    """What to say of a bare word that is not a subcommand.

    The word is echoed only when it is close to a subcommand: a bare argument far from any could be an
    API key pasted in the wrong place, and secrets never reach an error message."""
    closest = _closest(token, commands)
    if closest is not None:
        return f"unknown command '{token}'; did you mean '{closest}'?"
    return f"unknown command (not a subcommand: {', '.join(sorted(commands))}); 'run' is the default"


def unknown_option_message(token: str, command: str, options: Iterable[str]) -> str:
    """What to say of an option the subcommand does not take (its value, after '=', is never echoed)."""
    name = token.split("=", 1)[0]
    if not name.startswith("-"):
        return f"'{command}' takes no argument here (see '{PROG} {command} --help')"
    closest = _closest(name, options)
    hint = f"did you mean '{closest}'?" if closest else f"see '{PROG} {command} --help'"
    return f"unknown option '{name}' for '{command}'; {hint}"


def with_default_command(argv: list[str], commands: set[str]) -> list[str]:
    """The arguments with the subcommand moved to the front, or `run` inserted if none is named.

    `--local` first stands for `demo`. UsageError for a bare word that is not a subcommand."""
    index, after_unknown_option = 0, False
    while index < len(argv):
        token = argv[index]
        if token in _VALUE_OPTIONS:
            index, after_unknown_option = index + 2, False
            continue
        if token in {"-h", "--help", "--version"} and index == 0:
            return argv
        if token == LOCAL_FLAG and index == 0:
            return [LOCAL_COMMAND, *argv[1:]]
        if not token.startswith("-"):
            if token in commands:
                return [token, *argv[:index], *argv[index + 1 :]]
            if after_unknown_option:
                break  # the value of an option `run` does not know: its parser names that option
            raise UsageError(unknown_command_message(token, commands))
        after_unknown_option = not _FLAG_OPTIONS.match(token)
        index += 1
    return [DEFAULT_COMMAND, *argv]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def parse_arguments(parser: argparse.ArgumentParser, raw_argv: list[str]) -> argparse.Namespace:
    """The parsed command line; UsageError (with the closest valid name) for an unknown command or option."""
    subcommands = _subcommands(parser)
    args, unknown = parser.parse_known_args(with_default_command(raw_argv, set(subcommands)))
    if unknown:
        options = subcommands[args.command]._option_string_actions
        raise UsageError(unknown_option_message(unknown[0], args.command, options))
    return args


def _restore_default_signal_actions() -> None:
    """Subcommands other than `run` keep Python's own Ctrl+C (KeyboardInterrupt) and SIGTERM."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand; returns the exit status."""
    install_process_hooks()  # first: whatever is printed or raised from here on is redacted
    try:
        return _main(argv)
    except StopRequested as stop:
        # Nothing had started yet that needs stopping: a stop at this point is a clean one.
        print(f"{signal.Signals(stop.signum).name} received during start-up; stopped.", file=sys.stderr)
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parse_arguments(parser, list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    args.verbosity = args.verbose - args.quiet
    handler: Callable[[argparse.Namespace], int] = args.handler
    if args.command != DEFAULT_COMMAND and threading.current_thread() is threading.main_thread():
        _restore_default_signal_actions()
    if not getattr(args, "reads_bridge_data", False):
        configure_logging(getattr(args, "logs_dir", None) or Path("logs"), args.verbosity)
        return handler(args)
    try:
        return handler(args)
    except ConfigError as error:
        # Logging may not be set up yet (the config decides the secrets), so print plainly.
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG_ERROR
