"""Progress the operator can see: downloads (bytes, rate, ETA, a bar) and long start-up steps.

`DownloadProgress` is plain data so that a status line or dashboard can read it while a download
runs; `ProgressLog` decides when a line is worth printing (every few seconds, not every chunk).
`StepProgress` logs one bar line per finished part of a start-up step (processes started, models
verified). Bars are plain text in log lines, so they read the same in a terminal, a log file and
`docker logs`, where redrawn terminal bars turn into noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

LOG_EVERY_S = 5.0
BAR_WIDTH = 20


def progress_bar(done: float, total: float, width: int = BAR_WIDTH) -> str:
    """`[########------------]` for done/total (clamped to 0..1; an empty bar when total is 0)."""
    fraction = min(1.0, max(0.0, done / total)) if total > 0 else 0.0
    filled = round(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


@dataclass
class DownloadProgress:
    """One file's download as it stands."""

    name: str
    total_bytes: int | None
    done_bytes: int = 0
    resumed_from: int = 0
    started_at: float = 0.0
    now: float = 0.0
    finished: bool = False
    error: str | None = None

    @property
    def rate(self) -> float:
        """Bytes per second over this attempt (resumed bytes not counted)."""
        elapsed = self.now - self.started_at
        return (self.done_bytes - self.resumed_from) / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate; None when the total or the rate is unknown."""
        if self.total_bytes is None or self.rate <= 0:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / self.rate)

    def describe(self) -> str:
        """`name: [########------------] 40% (400.0 of 1000.0 MB) at 12.5 MB/s, ETA 48 s`."""
        mb = 1024 * 1024
        total = f" of {self.total_bytes / mb:.1f}" if self.total_bytes else ""
        percent = ""
        if self.total_bytes:
            share = f"{100 * self.done_bytes / self.total_bytes:.0f}%"
            percent = f"{progress_bar(self.done_bytes, self.total_bytes)} {share} "
        eta = self.eta_seconds
        eta_text = f", ETA {eta:.0f} s" if eta is not None else ""
        return f"{self.name}: {percent}({self.done_bytes / mb:.1f}{total} MB) at {self.rate / mb:.1f} MB/s{eta_text}"


@dataclass
class ProgressLog:
    """Logs a progress line at most every `every` seconds, and always at the end."""

    every: float = LOG_EVERY_S
    clock: Callable[[], float] = time.monotonic
    lines: int = 0
    _last: float = field(default=float("-inf"))

    def update(self, progress: DownloadProgress) -> None:
        """Called for each chunk; prints when the cadence allows."""
        progress.now = self.clock()
        if progress.now - self._last >= self.every:
            self._last = progress.now
            self.lines += 1
            logger.info(f"Downloading {progress.describe()}")

    def finish(self, progress: DownloadProgress) -> None:
        """The last line of a file's download, whatever the cadence."""
        progress.now = self.clock()
        self.lines += 1
        logger.info(f"Downloaded {progress.describe()}")


@dataclass
class StepProgress:
    """A start-up step made of `total` parts; logs `label [####----] done/total (elapsed)` as parts finish."""

    label: str
    total: int
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    started_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    def advance(self, what: str = "") -> None:
        """One more part finished (`what` names it in the line)."""
        self.done += 1
        elapsed = self.clock() - self.started_at
        suffix = f": {what}" if what else ""
        logger.info(
            f"{self.label} {progress_bar(self.done, self.total)} {self.done}/{self.total} ({elapsed:.1f} s){suffix}"
        )
