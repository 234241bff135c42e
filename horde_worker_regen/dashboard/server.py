"""Starting and stopping the dashboard beside the worker; a port already taken only costs the dashboard."""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.port_holder import port_taken_message
from horde_worker_regen.dashboard.snapshot import DashboardSources


class DashboardServer:
    """The dashboard's HTTP server, on the worker's event loop."""

    def __init__(self, data: BridgeData, sources: DashboardSources) -> None:
        self._data = data
        token = data.dashboard_token.get_secret_value() if data.dashboard_token is not None else None
        self._runner = web.AppRunner(dashboard_app(sources, token), access_log=None)
        self.url: str | None = None

    async def start(self) -> bool:
        """Listen; on failure (port taken, address not on this machine) warn and return False."""
        host, port = self._data.dashboard_host, self._data.dashboard_port
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as error:
            logger.warning(port_taken_message(host, port, str(error.strerror or error)))
            await self._runner.cleanup()
            return False
        bound_port = self._runner.addresses[0][1]  # the one the system chose, with dashboard_port: 0
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}/"
        logger.info(f"Dashboard on {self.url}" + (" (token required)" if self._data.dashboard_token else ""))
        return True

    async def stop(self) -> None:
        """Close the listening socket and any open connection."""
        if self.url is not None:
            await self._runner.cleanup()
            self.url = None


async def start_dashboard(data: BridgeData, sources: DashboardSources) -> DashboardServer | None:
    """The running dashboard, or None when it is disabled or could not listen."""
    if not data.dashboard_enabled:
        return None
    server = DashboardServer(data, sources)
    return server if await server.start() else None
