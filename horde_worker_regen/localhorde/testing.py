"""Helpers for running the local horde inside tests on a real TCP port.

    async with serve_local_horde() as horde:
        user = horde.add_user("alice", trusted=True, kudos=1000)
        ...  # point a worker at horde.api_url with user.api_key

or, in a conftest:

    from horde_worker_regen.localhorde.testing import local_horde_fixture
    local_horde = local_horde_fixture()            # an async fixture yielding RunningLocalHorde

The fixture defaults to no background sweep (call `horde.sweep()`), so tests stay deterministic.
A test waits for the server's state to reach a condition with `await horde.wait_for_state(predicate,
timeout)`, which wakes on each request the server handles, not on a timer.

For the level-13 post-processors: `post_processing_request(model, name)` is a requester's body asking
for one of them, `horde.queue(user, body)` queues it through the requester's validation, and
`horde.bridge_agent_of(worker_name)` is the agent a worker last popped with (what the horde pays by).

Alchemy: `horde.queue_interrogation(user, ["caption", "RealESRGAN_x4plus"], png_bytes)` queues a request
as `/v2/interrogate/async` would; `horde.form_results(request_id)` reads what alchemists delivered, and
`await horde.wait_for_interrogation(request_id, "done", timeout)` waits for its overall state.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.alchemy_entities import Interrogation, InterrogationForm
from horde_worker_regen.localhorde.alchemy_requests import overall_state, queue_interrogation
from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.capabilities import BRIDGE_CAPABILITIES, REGEN_NAME
from horde_worker_regen.localhorde.clock import Clock, FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User, WaitingPrompt
from horde_worker_regen.localhorde.faults import FaultInjector
from horde_worker_regen.localhorde.jobs import SweepReport
from horde_worker_regen.localhorde.reference import ModelReference
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.schemas import FACE_FIXERS
from horde_worker_regen.localhorde.state import HordeState

SHUTDOWN_GRACE_S = 2.0  # seconds a held request may delay the server's stop
# The post-processors capability level 13 adds, which the horde hands only to a bridge claiming 13 or more.
LEVEL_13_POST_PROCESSORS: tuple[str, ...] = tuple(sorted(BRIDGE_CAPABILITIES[REGEN_NAME][13]))


def post_processing_request(
    model: str, post_processor: str, *, size: int = 64, steps: int = 4, facefixer_strength: float = 1.0
) -> dict[str, Any]:
    """A requester's body for one `size`-px image of `model` through `post_processor` (a face restorer with
    `facefixer_strength`), with the images uploaded to R2 as the public horde does."""
    params: dict[str, Any] = {
        "width": size,
        "height": size,
        "steps": steps,
        "n": 1,
        "post_processing": [post_processor],
    }
    if post_processor in FACE_FIXERS:
        params["facefixer_strength"] = facefixer_strength
    return {
        "prompt": f"a portrait, then {post_processor}",
        "models": [model],
        "params": params,
        "nsfw": False,
        "r2": True,
    }


@dataclass
class RunningLocalHorde:
    """A local horde listening on a real port, with handles on its internals."""

    horde: LocalHorde
    base_url: str

    @property
    def api_url(self) -> str:
        """What a worker's `horde_url` should be (`http://127.0.0.1:PORT/api`)."""
        return f"{self.base_url}/api"

    @property
    def state(self) -> HordeState:
        """Users, workers, requests, jobs and stored objects."""
        return self.horde.state

    @property
    def faults(self) -> FaultInjector:
        """Switch faults at run time: `faults.add(endpoint="submit", kind="drop", times=1)`."""
        return self.horde.faults

    @property
    def clock(self) -> Clock:
        """The server's clock (a `FakeClock` when one was given)."""
        return self.horde.clock

    def add_user(self, username: str, **fields: Any) -> User:
        """Create an account (see `LocalHorde.add_user`)."""
        return self.horde.add_user(username, **fields)

    def advance_clock(self, seconds: float) -> float:
        """Move a fake clock forward."""
        return self.horde.advance_clock(seconds)

    def sweep(self) -> SweepReport:
        """Run the ttl/expiry sweep now."""
        return self.horde.sweep()

    def queue(self, user: User, body: dict[str, Any]) -> WaitingPrompt:
        """Queue a requester's body for `user`, validated as `POST /v2/generate/async` validates it."""
        return queue_request(self.horde, user, body)

    def bridge_agent_of(self, worker_name: str) -> str | None:
        """The `bridge_agent` the worker called `worker_name` last popped with (None: it never popped)."""
        worker = self.horde.worker(worker_name)
        return worker.bridge_agent if worker is not None else None

    async def wait_for_state(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return as soon as `predicate()` (a condition on the horde's state) holds: checked now and after
        each request the server handles and each sweep, never by polling. TimeoutError after `timeout` s."""
        await self.horde.changes.wait_for(predicate, timeout)

    # Alchemy

    def queue_interrogation(
        self,
        user: User,
        forms: Sequence[str | dict[str, Any]],
        image: bytes | str,
        *,
        image_size: tuple[int, int] | None = None,
        safe_ip: bool = True,
        **fields: Any,
    ) -> Interrogation:
        """Queue alchemy as `POST /v2/interrogate/async` would: `forms` are names or `{"name", "payload"}`;
        `image` is the image's bytes (sent as base64), or a URL whose `image_size` must be given;
        `fields` are the other body fields (`slow_workers`, `trusted_workers`)."""
        source = base64.b64encode(image).decode() if isinstance(image, bytes) else image
        body = {"forms": [{"name": f} if isinstance(f, str) else f for f in forms], "source_image": source, **fields}
        return queue_interrogation(self.horde, user, body, image_size=image_size, safe_ip=safe_ip)

    def forms_of(self, request_id: str) -> list[InterrogationForm]:
        """The forms of an interrogation request (none once it expired)."""
        store = self.horde.state.alchemy
        interrogation = store.interrogations.get(request_id)
        return store.forms_of(interrogation) if interrogation is not None else []

    def form_results(self, request_id: str) -> dict[str, dict[str, Any] | None]:
        """Each form's result by form name (None until delivered)."""
        return {form.name: form.result for form in self.forms_of(request_id)}

    def interrogation_state(self, request_id: str) -> str | None:
        """The request's overall state as its status shows it (None: unknown or expired)."""
        if request_id not in self.horde.state.alchemy.interrogations:
            return None
        return overall_state(self.forms_of(request_id))

    async def wait_for_interrogation(self, request_id: str, state: str, timeout: float) -> None:
        """Wait until the request's overall state is `state` (done, faulted, processing, ...)."""
        await self.wait_for_state(lambda: self.interrogation_state(request_id) == state, timeout)


@contextlib.asynccontextmanager
async def serve_local_horde(
    config: LocalHordeConfig | None = None,
    *,
    clock: Clock | None = None,
    reference: ModelReference | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[RunningLocalHorde]:
    """Start the server on `host:port` (0: a free port) and stop it on exit."""
    config = config or LocalHordeConfig(sweep_interval=0)
    horde = LocalHorde(config, clock=clock, reference=reference)
    # A request a fault holds open (a hung pop, a trickled answer) must not keep the server from stopping
    # for aiohttp's default 60 s: this server is stopped at the end of every test and demo run.
    runner = web.AppRunner(create_app(horde=horde), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningLocalHorde(horde=horde, base_url=f"http://{bound_host}:{bound_port}")
    finally:
        await runner.cleanup()


def local_horde_fixture(
    config_factory: Callable[[], LocalHordeConfig] | None = None,
    *,
    fake_clock: bool = False,
) -> Any:
    """Return an async pytest fixture yielding a `RunningLocalHorde` (needs pytest-asyncio)."""
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def local_horde() -> AsyncIterator[RunningLocalHorde]:
        config = config_factory() if config_factory else LocalHordeConfig(sweep_interval=0)
        async with serve_local_horde(config, clock=FakeClock() if fake_clock else None) as running:
            yield running

    return local_horde
