"""Taking the history's samples from the one dashboard snapshot, every `interval_s` or on demand.

Kudos/hr is the snapshot's own (the rewards of the last hour, as on the page); images/min, MPS/s and
slot duty are rates over the last `RATE_WINDOW_S` seconds, from the running totals of this run (so a
restart starts them afresh, never a negative rate); faults are the jobs faulted or dropped since the
previous sample; queue depth is the jobs waiting now; kudos per kWh comes from the GPU telemetry when
the snapshot has it. Rates use the worker's uptime (its monotonic clock); a sample is stamped with the
wall clock, which is what lasts across restarts. Each sample goes to the ring and to the event log.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.dashboard.history import SAMPLE_KIND, HistoryRing, Sample
from horde_worker_regen.jobs.events import EventLog

RATE_WINDOW_S = 300.0
Snapshot = dict[str, Any]


@dataclass(frozen=True)
class _Totals:
    """The running totals of one snapshot, at `uptime` seconds."""

    uptime: float
    images: float
    megapixelsteps: float
    problems: float  # jobs faulted or dropped
    busy: dict[int, float]  # busy seconds by slot

    @staticmethod
    def of(snapshot: Snapshot) -> _Totals:
        totals = snapshot["totals"]
        return _Totals(
            uptime=float(snapshot["worker"]["uptime_s"]),
            images=float(totals["images"]),
            megapixelsteps=float(totals["megapixelsteps"]),
            problems=float(totals["faulted"] + totals["dropped"]),
            busy={int(slot["index"]): float(slot["busy_s"]) for slot in snapshot["slots"]},
        )


_START = _Totals(0.0, 0.0, 0.0, 0.0, {})  # every total is zero when the worker starts


class HistorySampler:
    """Turns snapshots into samples of the ring, and records each in the event log."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        ring: HistoryRing,
        events: EventLog | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._snapshot = snapshot
        self.ring = ring
        self._events = events
        self._wall_clock = wall_clock
        self._window: deque[_Totals] = deque([_START])
        self._previous = _START

    def sample_now(self) -> Sample:
        """Take one sample now: into the ring, and into the event log as a `history_sample` record."""
        snapshot = self._snapshot()
        now = _Totals.of(snapshot)
        self._window.append(now)
        while len(self._window) > 2 and self._window[1].uptime <= now.uptime - RATE_WINDOW_S:
            self._window.popleft()
        base, previous, self._previous = self._window[0], self._previous, now
        span = max(now.uptime - base.uptime, 1e-6)
        duties = tuple(_fraction((busy - base.busy.get(index, 0.0)) / span) for index, busy in sorted(now.busy.items()))
        values: dict[str, float | None] = {
            "kudos_per_hour": float(snapshot["totals"]["kudos_per_hour"]),
            "images_per_minute": (now.images - base.images) * 60.0 / span,
            "megapixelsteps_per_second": (now.megapixelsteps - base.megapixelsteps) / span,
            "slot_duty": sum(duties) / len(duties) if duties else 0.0,
            "faults": max(0.0, now.problems - previous.problems),
            "queue_depth": float(len(snapshot["queue"])),
            "kudos_per_kwh": _kudos_per_kwh(snapshot),
        }
        sample = Sample(self._wall_clock(), values, duties)
        self.ring.add(sample)
        if self._events is not None:
            self._events.emit(SAMPLE_KIND, **sample.fields())
        return sample

    async def sample_forever(self) -> None:
        """A sample every `ring.interval_s` seconds, until cancelled (a failed one is logged and skipped)."""
        while True:
            await asyncio.sleep(self.ring.interval_s)
            try:
                self.sample_now()
            except Exception:  # a sample lost costs a point of a chart, never the worker
                logger.opt(exception=True).error("Could not take the dashboard's history sample")


def _fraction(value: float) -> float:
    return min(1.0, max(0.0, value))


def _kudos_per_kwh(snapshot: Snapshot) -> float | None:
    """Kudos per kWh of measured GPU power, when the snapshot carries telemetry that measured it."""
    telemetry = snapshot.get("telemetry")
    value = telemetry.get("kudos_per_kwh") if isinstance(telemetry, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
