"""Time sources for the local horde.

Every rule of the horde that involves time (job ttl, request expiry, URL expiry, the hourly abort
window, the check-in debounce, uptime) reads the clock through this interface, so tests can move
time forward instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Return `time.time()`."""
        return time.time()


class FakeClock:
    """A clock that only moves when told to; used by tests and by `POST /_admin/clock`."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        # The default start (2026-01-01T00:00:00Z) keeps generated dates realistic.
        self._now = start

    def now(self) -> float:
        """Return the current fake time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` and return the new time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds
        return self._now

    def set(self, timestamp: float) -> None:
        """Jump to an absolute time (forward only)."""
        if timestamp < self._now:
            raise ValueError("a clock only moves forward")
        self._now = timestamp
