"""Which process holds a TCP port, for the message of a dashboard that cannot listen.

Best effort: psutil may not see other users' sockets (or any, on some systems without privileges);
then the message only says what to change.
"""

from __future__ import annotations

import contextlib
import ipaddress

import psutil

ANY_ADDRESS = {"0.0.0.0", "::"}  # wildcard listeners take the port on every address


def _same_address(listening: str, wanted: str) -> bool:
    """A listener on `listening` takes `wanted`'s port if they are equal or either is a wildcard."""
    if listening in ANY_ADDRESS or wanted in ANY_ADDRESS or wanted in {"", "localhost"}:
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(listening) == ipaddress.ip_address(wanted)
    return listening == wanted


def port_holder(host: str, port: int) -> str | None:
    """'pid N (name)' of the process listening on host:port, or None when it cannot be told."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for connection in connections:
        if connection.status != psutil.CONN_LISTEN or not connection.laddr or connection.pid is None:
            continue
        if connection.laddr.port == port and _same_address(connection.laddr.ip, host):
            try:
                name = psutil.Process(connection.pid).name()
            except psutil.Error:
                return f"pid {connection.pid}"
            return f"pid {connection.pid} ({name})"
    return None


def port_taken_message(host: str, port: int, reason: str) -> str:
    """What to say, and what to change, when the dashboard cannot listen on host:port."""
    holder = port_holder(host, port)
    held = f"; it is held by {holder}" if holder else ""
    return (
        f"The dashboard cannot listen on {host}:{port} ({reason}{held}); the worker goes on without it. "
        f"Set dashboard_port to a free port (0: any free port), or dashboard_enabled: false to run without it."
    )
