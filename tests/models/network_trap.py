"""A proxy that answers nothing and counts who tried it: proof that a process reached for the network.

Point a process's `HTTP_PROXY`/`HTTPS_PROXY` (which requests, and so pooch and rembg, honour) at the
trap: every download it attempts opens a connection here, is counted, and is closed unanswered.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class _CountingServer(socketserver.ThreadingTCPServer):
    """Accepts every connection on a loopback port, counts it, and closes it unanswered."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Count)
        self.lock = threading.Lock()
        self.connections = 0


class _Count(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, _CountingServer)
        with self.server.lock:
            self.server.connections += 1


@dataclass
class NetworkTrap:
    """The proxy's URL, and the connections it has had."""

    url: str
    server: _CountingServer

    @property
    def connections(self) -> int:
        with self.server.lock:
            return self.server.connections

    def environment(self) -> dict[str, str]:
        """Proxy variables that send every HTTP(S) request of a process here (nothing exempted)."""
        proxies = {name: self.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
        return {**proxies, "NO_PROXY": "", "no_proxy": ""}


@contextmanager
def network_trap() -> Iterator[NetworkTrap]:
    """A counting proxy on a loopback port, for as long as the block runs."""
    server = _CountingServer()
    thread = threading.Thread(target=server.serve_forever, name="network trap", daemon=True)
    thread.start()
    try:
        yield NetworkTrap(f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
