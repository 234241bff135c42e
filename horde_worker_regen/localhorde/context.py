"""`LocalHorde`: the one object every handler reaches through `request.app[HORDE_KEY]`.

It is also the Python API tests use to drive the server: create users, queue requests, switch
faults, move a fake clock, run the sweep, look at workers and jobs, and wait for a change of state
(`changes`).
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.alchemy_jobs import sweep_alchemy
from horde_worker_regen.localhorde.changes import StateChanges
from horde_worker_regen.localhorde.clock import Clock, FakeClock, SystemClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import User, Worker
from horde_worker_regen.localhorde.faults import FaultInjector
from horde_worker_regen.localhorde.jobs import SweepReport, set_maintenance, sweep
from horde_worker_regen.localhorde.reference import ModelRecord, ModelReference
from horde_worker_regen.localhorde.state import HordeState
from horde_worker_regen.localhorde.urls import UrlSigner


class LocalHorde:
    """Configuration, clock, model reference, state, faults, URL signing and change announcements of one server."""

    def __init__(
        self,
        config: LocalHordeConfig | None = None,
        *,
        clock: Clock | None = None,
        reference: ModelReference | None = None,
    ) -> None:
        self.config = config or LocalHordeConfig()
        if clock is None:
            clock = FakeClock() if self.config.fake_clock else SystemClock()
        self.clock: Clock = clock
        self.reference = reference or self._load_reference()
        self.state = HordeState(clock, detect_suspicion=self.config.detect_suspicion)
        self.faults = FaultInjector()
        self.changes = StateChanges()  # announced after each request handled and each sweep
        secret = self.config.url_secret.encode() if self.config.url_secret else secrets.token_bytes(32)
        self.signer = UrlSigner(secret)
        self._apply_config()

    def _load_reference(self) -> ModelReference:
        if self.config.model_reference:
            return ModelReference.load(self.config.model_reference)
        return ModelReference.bundled()

    def _apply_config(self) -> None:
        for entry in self.config.models:
            self.reference.register(ModelRecord(**entry.model_dump()))
        for user in self.config.users:
            self.add_user(
                user.username,
                api_key=user.api_key,
                user_id=user.id,
                kudos=user.kudos,
                trusted=user.trusted,
                roles=user.roles,
                worker_invited=user.worker_invited,
            )
        stats = self.state.model_stats
        stats.seed_day = dict(self.config.model_stats.day)
        stats.seed_month = dict(self.config.model_stats.month)
        stats.seed_total = dict(self.config.model_stats.total)

    # Python API for tests and tools

    def add_user(
        self,
        username: str,
        *,
        api_key: str | None = None,
        user_id: int | None = None,
        kudos: float = 0.0,
        trusted: bool = False,
        roles: list[str] | set[str] | None = None,
        worker_invited: int = 0,
    ) -> User:
        """Create an account and return it (its `api_key` is on the record)."""
        return self.state.add_user(
            username,
            api_key=api_key,
            user_id=user_id,
            kudos=kudos,
            trusted=trusted,
            roles=set(roles or ()),
            worker_invited=worker_invited,
        )

    def register_model(self, name: str, baseline: str = "stable diffusion 1", **fields: Any) -> None:
        """Add a model to the reference (inpainting, nsfw, min_steps, max_steps optional)."""
        self.reference.register(ModelRecord(name=name, baseline=baseline, **fields))

    def worker(self, name: str) -> Worker | None:
        """A worker by exact name."""
        return self.state.worker_by_name(name)

    def set_maintenance(self, worker_name: str, enabled: bool = True, message: str | None = None) -> None:
        """Put a worker into (or out of) maintenance, as its owner or a moderator would."""
        worker = self.state.worker_by_name(worker_name)
        if worker is None:
            raise KeyError(worker_name)
        set_maintenance(worker, enabled, message)

    def advance_clock(self, seconds: float) -> float:
        """Move a `FakeClock` forward; fails on the system clock."""
        if not isinstance(self.clock, FakeClock):
            raise TypeError("the local horde runs on the system clock")
        return self.clock.advance(seconds)

    def sweep(self) -> SweepReport:
        """Run the 60-second sweeps now: abort stale jobs and forms, delete expired requests
        (`check_waiting_prompts` and `check_interrogations`)."""
        report = sweep(self.state)
        alchemy = sweep_alchemy(self.state)
        report.aborted_forms = alchemy.aborted_forms
        report.expired_interrogations = alchemy.expired_interrogations
        self.changes.notify()
        return report

    def public_base(self, request: web.Request) -> str:
        """Scheme and host for the URLs handed out (config `public_url`, else what the client used)."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"


HORDE_KEY = web.AppKey("local_horde", LocalHorde)


def horde_of(request: web.Request) -> LocalHorde:
    """The `LocalHorde` serving a request."""
    return request.app[HORDE_KEY]
