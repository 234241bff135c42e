"""The console log's stream for `run --tui`: the terminal while no screen is up, kept in memory while one is.

The console sink writes here; while the terminal UI owns the terminal its lines are kept (the UI shows
the last ones) instead of being printed over the screen. The log files get every line either way. When
the UI closes, the last lines are printed, so the terminal ends with the run's final words (the summary).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TextIO

from rich.text import Text

LINES_KEPT = 200
LINES_REPLAYED = 12


class ConsoleTail:
    """A file-like console stream that can hold its lines back (the sinks may write from any thread)."""

    def __init__(self, stream: TextIO, kept: int = LINES_KEPT) -> None:
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=kept)
        self._partial = ""
        self._holding = False
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            if not self._holding:
                return self._stream.write(text)
            self._partial += text
            *complete, self._partial = self._partial.split("\n")
            self._lines.extend(Text.from_ansi(line).plain for line in complete)  # colours are for terminals
            return len(text)

    def flush(self) -> None:
        with self._lock:
            if not self._holding:
                self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()  # loguru colours the console as it would the terminal itself

    def hold(self) -> None:
        """Keep the lines from now on instead of printing them."""
        with self._lock:
            self._holding = True

    def release(self, replayed: int = LINES_REPLAYED) -> None:
        """Print again, starting with the last `replayed` lines held."""
        with self._lock:
            self._holding = False
            held = list(self._lines)[-replayed:] if replayed > 0 else []
            for line in held:
                self._stream.write(line + "\n")
            self._stream.flush()

    def last(self, count: int) -> list[str]:
        """The last `count` lines held, oldest first."""
        with self._lock:
            return list(self._lines)[-count:] if count > 0 else []
