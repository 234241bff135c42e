"""The two figures drawn as sparklines, kudos/hr and images/min, over time.

From the worker's own history (`/history.json`) when it keeps one: the same points as the web page's
charts, fetched once and then only the newer ones. Otherwise from the snapshots the terminal UI
polls: kudos/hr as the worker reports it, images/min from the images counted over the last minute.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from horde_worker_regen.shared.numbers import finite
from horde_worker_regen.tui.source import History, Snapshot

KUDOS, IMAGES = "kudos_per_hour", "images_per_minute"
POINTS_KEPT = 240  # wider than any terminal the sparklines are drawn in
RATE_WINDOW_S = 60.0
# No rate comes near it; beyond it the span of two values (the sparkline's scale) could overflow to inf.
LARGEST_VALUE = 1e300


class Trends:
    """The points of each figure, oldest first, and where they come from."""

    def __init__(self, kept: int = POINTS_KEPT) -> None:
        self._points: dict[str, deque[tuple[float, float]]] = {name: deque(maxlen=kept) for name in (KUDOS, IMAGES)}
        self._images_seen: deque[tuple[float, int]] = deque()
        self.from_history = False

    def values(self, name: str) -> list[float]:
        """The figure's values, oldest first."""
        return [value for _, value in self._points[name]]

    def latest(self, name: str) -> float | None:
        points = self._points[name]
        return points[-1][1] if points else None

    @property
    def newest_time(self) -> float | None:
        """The time of the newest history point (what to ask `/history.json?since=` for); None before the first."""
        if not self.from_history:
            return None
        stamps = [points[-1][0] for points in self._points.values() if points]
        return max(stamps) if stamps else None

    def add_history(self, history: History) -> None:
        """Take the worker's history points newer than those already held."""
        series = history.get("series")
        if not isinstance(series, dict):
            return
        if not self.from_history:
            self.from_history = True
            for points in self._points.values():
                points.clear()  # the polled samples give way to the worker's own record
        for name, points in self._points.items():
            newest = points[-1][0] if points else float("-inf")
            points.extend((t, v) for t, v in _pairs(series.get(name)) if t > newest)

    def observe(self, snapshot: Snapshot, now: float) -> None:
        """Sample a polled snapshot (ignored once the worker's history is used)."""
        if self.from_history:
            return
        totals = snapshot.get("totals")
        if not isinstance(totals, dict):
            return
        kudos = _value(totals.get("kudos_per_hour"))
        if kudos is not None:
            self._points[KUDOS].append((now, kudos))
        images = totals.get("images")
        if isinstance(images, int) and not isinstance(images, bool) and 0 <= images <= LARGEST_VALUE:
            rate = _value(self._images_per_minute(now, images))
            if rate is not None:
                self._points[IMAGES].append((now, rate))

    def _images_per_minute(self, now: float, images: int) -> float | None:
        seen = self._images_seen
        if seen and images < seen[-1][1]:
            seen.clear()  # a restarted worker counts from zero again
        seen.append((now, images))
        while len(seen) > 2 and now - seen[1][0] >= RATE_WINDOW_S:
            seen.popleft()  # keep one sample at least a window old, to measure over the whole window
        first_t, first_images = seen[0]
        if now <= first_t:
            return None
        return (images - first_images) * 60.0 / (now - first_t)


def _value(value: Any) -> float | None:
    """A figure's value when it is a finite number the sparkline can scale; None otherwise."""
    number = finite(value)
    return number if number is not None and abs(number) <= LARGEST_VALUE else None


def _pairs(points: Any) -> list[tuple[float, float]]:
    """[[t, v], ...] as read from JSON, leaving out anything else: a point whose time or value is not a finite
    number (a time of inf would be asked for as `?since=inf`, which the worker refuses, and the trends would
    stop)."""
    if not isinstance(points, list):
        return []
    pairs = []
    for point in points:
        if isinstance(point, list | tuple) and len(point) == 2:
            t, v = finite(point[0]), _value(point[1])
            if t is not None and v is not None:
                pairs.append((t, v))
    return pairs
