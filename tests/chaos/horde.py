"""A local horde that can go down and come back on the same port with its state intact."""

from __future__ import annotations

from aiohttp import web

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.chaos.ledger import HordeLedger

HOST = "127.0.0.1"
# Open requests get this long to finish when the server goes down; then their connections are cut.
SHUTDOWN_TIMEOUT_S = 0.5


class ChaosHorde:
    """The embedded horde on a fixed port: `stop()` refuses connections until `start()` again."""

    def __init__(self, config: LocalHordeConfig | None = None) -> None:
        self.horde = LocalHorde(config or LocalHordeConfig(sweep_interval=0, detect_suspicion=False))
        self.ledger = HordeLedger()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> RunningLocalHorde:
        """The handle the worker-support helpers take (`queue`, `generations_of`, ...)."""
        assert self.port, "the horde was never started"
        return RunningLocalHorde(horde=self.horde, base_url=f"http://{HOST}:{self.port}")

    @property
    def is_up(self) -> bool:
        """True while it accepts connections."""
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port afterwards)."""
        app = create_app(horde=self.horde)
        app.middlewares.append(self.ledger.middleware)  # innermost: sees what the handlers answered
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Close the port and every open connection: the horde is down."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
