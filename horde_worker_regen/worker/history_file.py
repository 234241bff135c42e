"""The dashboard's history across restarts: `logs/history.jsonl`, the `history_sample` records of the event log.

The worker appends every sample (one JSON line, as in the metrics file) and, when it starts, reads the
last 24 hours back into the ring, so the charts go on where they stopped. The file stays small: at
start it is rewritten with only what is kept (at most a day of samples), and while the worker runs it
is rewritten the same way each time it holds twice that many lines (about 2 MB at the default 30 s).
Reading is tolerant: a missing or unreadable file is an empty history, and a torn last line (a crash
mid-write) or any line that is not a sample is skipped. Like the metrics file, this file never stops
the worker: a failure to write it is logged once and the worker goes on without it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from pathlib import Path
from typing import IO

from loguru import logger

from horde_worker_regen.dashboard.history import MAX_AGE_S, MAX_POINTS, SAMPLE_KIND, Sample, record_sample
from horde_worker_regen.jobs.events import Event
from horde_worker_regen.worker.event_file import parse_event_lines

HISTORY_FILE = "history.jsonl"
# Read at most this much of the file's end: twice a day of samples is far less, and garbage is not read whole.
READ_LIMIT_BYTES = 8 * 1024 * 1024


def read_history(path: Path, now: float, max_age_s: float = MAX_AGE_S, max_points: int = MAX_POINTS) -> list[Sample]:
    """The samples of the file of the last `max_age_s` seconds before `now` (at most `max_points`), oldest first.

    Never raises: a file that cannot be read is an empty history (and says so when it exists)."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - READ_LIMIT_BYTES))
            data = file.read(READ_LIMIT_BYTES)
    except FileNotFoundError:
        return []
    except OSError as error:
        logger.warning(f"Cannot read the dashboard's history from {path} ({error}); it starts empty")
        return []
    samples = [sample for sample in map(record_sample, parse_event_lines(data.decode("utf-8", errors="replace")))
               if sample is not None and now - max_age_s <= sample.t <= now]  # fmt: skip
    samples.sort(key=lambda sample: sample.t)
    return samples[-max_points:] if max_points > 0 else []


class HistoryFile:
    """An event-log sink that appends each `history_sample` record to the history file, kept bounded."""

    def __init__(self, path: Path, kept: list[Sample], max_points: int = MAX_POINTS) -> None:
        """Start the file afresh with `kept` (what `read_history` returned), then append to it."""
        self.path = path
        self._lines: deque[str] = deque((_line(sample) for sample in kept), maxlen=max(1, max_points))
        self._file: IO[str] | None = None
        self._in_file = 0  # lines in the file
        self._rewrite()

    def __repr__(self) -> str:
        return f"the history file {self.path}"

    @property
    def writing(self) -> bool:
        """Whether samples still go to the file (False once it is closed or a write failed)."""
        return self._file is not None

    def __call__(self, event: Event) -> None:
        if event.kind != SAMPLE_KIND or self._file is None:
            return
        line = json.dumps(event.as_json(), separators=(",", ":")) + "\n"
        self._lines.append(line)
        self._in_file += 1
        try:
            if self._in_file >= 2 * (self._lines.maxlen or 1):
                self._file.close()
                self._rewrite()
            else:
                self._file.write(line)
                self._file.flush()
        except (OSError, ValueError) as error:  # ValueError: the file was closed under us
            self._give_up(error)

    def close(self) -> None:
        """Stop writing (later samples are ignored)."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError, ValueError):  # a full disk fails the last flush too
                file.close()

    def _rewrite(self) -> None:
        """Replace the file by the lines kept (a whole new file, so a crash leaves the old one or the new one)."""
        fresh = self.path.with_name(self.path.name + ".new")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh.write_text("".join(self._lines), encoding="utf-8")
            os.replace(fresh, self.path)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as error:
            self._give_up(error)
            return
        self._in_file = len(self._lines)

    def _give_up(self, error: Exception) -> None:
        logger.error(f"Stopped writing the dashboard's history to {self.path} ({error}); the worker goes on without it")
        self.close()


def _line(sample: Sample) -> str:
    return json.dumps({"kind": SAMPLE_KIND, **sample.fields()}, separators=(",", ":")) + "\n"
