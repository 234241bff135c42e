"""A local horde that can go down and come back on the same port with its state intact, and a
separate server of hostile inputs."""

from __future__ import annotations

import collections
from collections.abc import Callable

from aiohttp import web

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.chaos.hostile import PayloadTamper, add_hostile_routes
from tests.chaos.ledger import HordeLedger

HOST = "127.0.0.1"
# Open requests get this long to finish when a server goes down; then their connections are cut.
SHUTDOWN_TIMEOUT_S = 0.5


class _Server:
    """An aiohttp app on a fixed port: `stop()` refuses connections until `start()` again."""

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        """A fresh app for each start."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        assert self.port, "the server was never started"
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port afterwards)."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Close the port and every open connection."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


class ChaosHorde(_Server):
    """The embedded horde with its ledger, a payload tamperer, and hostile routes under /chaos on its origin."""

    def __init__(self, config: LocalHordeConfig | None = None, on_hit: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.horde = LocalHorde(config or LocalHordeConfig(sweep_interval=0, detect_suspicion=False))
        self.ledger = HordeLedger()
        self.tamper = PayloadTamper()
        self.hits: collections.Counter[str] = collections.Counter()
        self.on_hit = on_hit  # told of each hit on a hostile route as it arrives

    @property
    def running(self) -> RunningLocalHorde:
        """The handle the worker-support helpers take (`queue`, `generations_of`, ...)."""
        return RunningLocalHorde(horde=self.horde, base_url=self.base_url)

    def make_app(self) -> web.Application:
        """The local horde's app, with the ledger and the tamperer innermost (they see what handlers answer)."""
        app = create_app(horde=self.horde)
        app.middlewares.append(self.ledger.middleware)
        app.middlewares.append(self.tamper.middleware)
        add_hostile_routes(app, self.hits, on_hit=self.on_hit)
        return app


class HostileServer(_Server):
    """The hostile routes on their own origin (another port: not the horde's)."""

    def __init__(self, on_hit: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.hits: collections.Counter[str] = collections.Counter()
        self.on_hit = on_hit  # told of each hit as it arrives

    def make_app(self) -> web.Application:
        """Only the hostile routes."""
        app = web.Application()
        add_hostile_routes(app, self.hits, on_hit=self.on_hit)
        return app

    def url(self, path: str, host: str = HOST) -> str:
        """The URL of a hostile route (`/bomb.png`, ...), optionally under another host name."""
        return f"http://{host}:{self.port}/chaos{path}"
