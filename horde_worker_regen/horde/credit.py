"""Kudos as the horde pays them: the bridge factor, and what the horde credited this worker.

The reward a submit returns is before the bridge factor (horde-api.md §0.1): the horde pays 1.0x to
the latest official bridge version, 0.9x to an older official one and 0.75x to any other bridge, so
the worker's own estimate applies the factor of the agent it reports. What the owner is really paid
is read back from the worker's record on the horde (`kudos_rewards`, with `kudos_details` split into
jobs and uptime) a few times an hour and at exit; the difference from the first reading is what this
run earned. A worker the horde does not know yet (its first pop creates it) starts from zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError

OFFICIAL_BRIDGE_NAMES = ("AI Horde Worker reGen", "AI Horde Worker")
# The highest capability level the horde knows for reGen (horde-api.md §3.9): only it earns 1.0x.
LATEST_REGEN_LEVEL = 13
LATEST_FACTOR, OLDER_OFFICIAL_FACTOR, OTHER_BRIDGE_FACTOR = 1.0, 0.9, 0.75
CREDIT_READ_INTERVAL_S = 900.0  # four readings an hour: the worker record is a rate-limited endpoint
EXIT_READ_TIMEOUT_S = 10.0
BASELINE_TIMEOUT_S = 5.0


def bridge_kudos_factor(name: str, version: int) -> float:
    """The horde's kudos multiplier for a bridge agent `name:version:...`."""
    if name not in OFFICIAL_BRIDGE_NAMES:
        return OTHER_BRIDGE_FACTOR
    if name == OFFICIAL_BRIDGE_NAMES[0] and version >= LATEST_REGEN_LEVEL:
        return LATEST_FACTOR
    return OLDER_OFFICIAL_FACTOR


@dataclass(frozen=True)
class Credited:
    """Kudos the horde credited this worker since the run began, as of `read_at` (wall clock)."""

    total: float
    jobs: float
    uptime: float
    read_at: float


@dataclass(frozen=True)
class _Reading:
    total: float
    jobs: float
    uptime: float


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _reading(record: dict[str, Any] | None) -> _Reading:
    if record is None:
        return _Reading(0.0, 0.0, 0.0)  # not created yet: everything it will earn is this run's
    details = record.get("kudos_details")
    details = details if isinstance(details, dict) else {}
    return _Reading(
        _number(record.get("kudos_rewards")), _number(details.get("generated")), _number(details.get("uptime"))
    )


class CreditWatch:
    """Reads the worker's record on the horde and keeps what this run was credited."""

    def __init__(
        self,
        client: HordeClient,
        worker_name: str,
        on_reading: Callable[[Credited], None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._name = worker_name
        self._on_reading = on_reading
        self._wall_clock = wall_clock
        self._baseline: _Reading | None = None
        self._worker_id: str | None = None
        self.credited: Credited | None = None  # None until a reading after the baseline

    async def read(self) -> None:
        """One reading; the first one is the baseline. A failed reading is logged and skipped."""
        try:
            reading = _reading(await self._record())
        except HordeRequestError as error:
            logger.debug(f"Could not read this worker's kudos from the horde: {error.message}")
            return
        if self._baseline is None:
            self._baseline = reading
        base = self._baseline
        self.credited = Credited(
            reading.total - base.total, reading.jobs - base.jobs, reading.uptime - base.uptime, self._wall_clock()
        )
        self._on_reading(self.credited)

    async def _record(self) -> dict[str, Any] | None:
        if self._worker_id is None:
            self._worker_id = await self._client.worker_id_by_name(self._name)
            if self._worker_id is None:
                return None
        return await self._client.worker_record(self._worker_id)

    async def run(self, interval: float = CREDIT_READ_INTERVAL_S) -> None:
        """Read every `interval` seconds until cancelled (the baseline is taken before, by `bounded_read`)."""
        while True:
            await asyncio.sleep(interval)
            await self.read()

    async def bounded_read(self, timeout: float) -> None:
        """One reading within `timeout` s (the baseline before popping, the last one at exit): a horde that
        does not answer must not hold up the start or the exit."""
        try:
            await asyncio.wait_for(self.read(), timeout)
        except TimeoutError:
            logger.debug("The horde did not answer a kudos reading in time")
