"""`tui`: the terminal UI attached to a running worker through its dashboard's status API.

The address and token default to bridgeData's dashboard settings (`dashboard_host`, `dashboard_port`,
`dashboard_token`, also from AIWORKER_* variables), so on the worker's own machine `tui` alone is
enough. bridgeData's token goes only to the dashboard bridgeData describes: a `--url` naming another host
or port gets a token only from `--token`. Closing the view (`q`) leaves the worker running.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.field_rules import is_loopback_host
from horde_worker_regen.config.loader import MissingConfigFile, load_config
from horde_worker_regen.logs.redaction import register_secrets
from horde_worker_regen.tui.app import POLL_INTERVAL_S, WorkerMonitor
from horde_worker_regen.tui.source import HttpStatusSource

EXIT_OK = 0
# Listening on every interface: the worker is reached on this machine by its loopback name.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="the worker's dashboard, e.g. http://127.0.0.1:7070/ (default: from bridgeData's dashboard_*)"
    )
    parser.add_argument(
        "--token",
        help="the dashboard_token, when the dashboard asks for one (default: from bridgeData or "
        "AIWORKER_DASHBOARD_TOKEN, unless --url names another host or port; prefer those, a command line is "
        "visible to other users)",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("bridgeData.yaml"),
        help="the bridgeData file to read the address from",
    )
    parser.add_argument(
        "--interval", type=float, default=POLL_INTERVAL_S, help=f"seconds between reads (default {POLL_INTERVAL_S:g})"
    )


def dashboard_url(data: BridgeData) -> str:
    """Where this machine reaches the dashboard bridgeData describes; ConfigError when it cannot be known."""
    if not data.dashboard_enabled:
        raise ConfigError(["dashboard_enabled is false: the worker serves no status API to attach to"])
    if data.dashboard_port == 0:
        raise ConfigError(
            ["dashboard_port is 0 (the worker picks a free port and logs it as 'Dashboard on ...'): pass --url"]
        )
    host = _ANY_ADDRESS.get(data.dashboard_host, data.dashboard_host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{data.dashboard_port}/"


def _address(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL and token: the command line's, else bridgeData's (read only when something is missing)."""
    if args.url is not None and args.token is not None:
        return args.url, args.token
    try:
        data = load_config(args.config, os.environ).data
    except MissingConfigFile:
        if args.url is None:
            raise
        return args.url, args.token  # a remote worker's URL, and no local configuration: no token
    token = data.dashboard_token.get_secret_value() if data.dashboard_token is not None else None
    if args.url is None:
        return dashboard_url(data), args.token or token
    # The local token only where bridgeData's dashboard is: any other host would read it off the request.
    return args.url, args.token or (token if _is_local_dashboard(args.url, data) else None)


def _is_local_dashboard(url: str, data: BridgeData) -> bool:
    """Whether `url` names the host and port of the dashboard bridgeData describes."""
    try:
        local = dashboard_url(data)
    except ConfigError:
        return False  # no local dashboard to compare with
    place = _host_and_port(url)
    return place is not None and place == _host_and_port(local)


def _host_and_port(url: str) -> tuple[str, int] | None:
    """The host (lower case) and port a URL names, the scheme's port when it names none; None when unclear."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number, an unclosed IPv6 bracket
        return None
    if parts.hostname is None or port is None:
        return None
    # localhost, 127.0.0.1 and ::1 all reach this machine's dashboard: one place for the token rule.
    return ("loopback" if is_loopback_host(parts.hostname) else parts.hostname), port


def tui_command(args: argparse.Namespace) -> int:
    """Show the worker at the URL until `q`; the worker itself is never stopped from here."""
    url, token = _address(args)
    register_secrets([token])
    if args.interval <= 0:
        raise ConfigError([f"--interval must be more than 0 seconds, not {args.interval:g}"])
    # Nothing may print over the screen while it runs (this process writes no log files of its own).
    logger.remove()
    WorkerMonitor(HttpStatusSource(url, token), interval_s=args.interval).run()
    return EXIT_OK
