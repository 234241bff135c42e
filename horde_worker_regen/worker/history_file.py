"""The dashboard's history across restarts: `logs/history.jsonl`, the `history_sample` records of the event log.

The worker appends every sample (one JSON line, as in the metrics file) and, when it starts, reads the
last 24 hours back into the ring, so the charts go on where they stopped. The file stays small: at
start it is rewritten with only what is kept (at most a day of samples), and while the worker runs it
is rewritten the same way each time it holds twice that many lines (about 2 MB at the default 30 s).
Reading and rewriting (a megabyte or more) run in a thread, never on the event loop; the samples
that come while a rewrite is under way are kept aside and appended, in order, once it is done.
Reading is tolerant: a missing or unreadable file is an empty history, and a torn last line (a crash
mid-write) or any line that is not a sample is skipped. Like the metrics file, this file never stops
the worker: a failure to write it is logged once and the worker goes on without it.
"""

from __future__ import annotations

import asyncio
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
        """Not yet writing: `start` writes the file afresh with `kept` (what `read_history` returned)."""
        self.path = path
        self._lines: deque[str] = deque((_line(sample) for sample in kept), maxlen=max(1, max_points))
        self._file: IO[str] | None = None
        self._in_file = 0  # lines in the file (or in the file being rewritten)
        self._stopped = False
        self._rewrite: asyncio.Task[None] | None = None  # under way, in a thread
        self._aside: list[str] = []  # lines that came during the rewrite, for the file it leaves

    @classmethod
    async def start(cls, path: Path, kept: list[Sample], max_points: int = MAX_POINTS) -> HistoryFile:
        """The file afresh with `kept` (written in a thread), then appended to."""
        history = cls(path, kept, max_points)
        history._start_rewrite()
        await history.rewritten()
        return history

    def __repr__(self) -> str:
        return f"the history file {self.path}"

    @property
    def writing(self) -> bool:
        """Whether samples still go to the file (False once it is closed or a write failed)."""
        return not self._stopped

    def __call__(self, event: Event) -> None:
        if event.kind != SAMPLE_KIND or self._stopped:
            return
        line = json.dumps(event.as_json(), separators=(",", ":")) + "\n"
        self._lines.append(line)
        if self._rewrite is not None:
            self._aside.append(line)
            return
        self._in_file += 1
        if self._in_file >= 2 * (self._lines.maxlen or 1):
            self._start_rewrite()
            return
        self._append(line)

    async def rewritten(self) -> None:
        """Once no rewrite is under way (the lines that came meanwhile appended)."""
        while self._rewrite is not None:
            await asyncio.shield(self._rewrite)

    async def close(self) -> None:
        """Stop writing (later samples are ignored), once a rewrite under way has finished."""
        await self.rewritten()
        self._stopped = True
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError, ValueError):  # a full disk fails the last flush too
                file.close()

    def _append(self, text: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(text)
            self._file.flush()
        except (OSError, ValueError) as error:  # ValueError: the file was closed under us
            self._give_up(error)

    def _start_rewrite(self) -> None:
        """Replace the file by the lines kept, in a thread; until then, new lines are kept aside."""
        old, self._file = self._file, None
        self._in_file = len(self._lines)
        self._rewrite = asyncio.create_task(self._rewrite_in_thread(old, "".join(self._lines)), name="history file")

    async def _rewrite_in_thread(self, old: IO[str] | None, text: str) -> None:
        try:
            fresh = await asyncio.to_thread(_replace, self.path, old, text)
        except OSError as error:
            self._give_up(error)
            return
        finally:
            self._rewrite = None
        self._file = fresh
        aside, self._aside = self._aside, []
        self._in_file += len(aside)
        self._append("".join(aside))

    def _give_up(self, error: Exception) -> None:
        logger.error(f"Stopped writing the dashboard's history to {self.path} ({error}); the worker goes on without it")
        self._stopped = True
        self._aside.clear()
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError, ValueError):
                file.close()


def _replace(path: Path, old: IO[str] | None, text: str) -> IO[str]:
    """The file replaced whole by `text` (a crash leaves the old one or the new one), open to append to."""
    if old is not None:
        with contextlib.suppress(OSError, ValueError):
            old.close()
    fresh = path.with_name(path.name + ".new")
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_text(text, encoding="utf-8")
    os.replace(fresh, path)
    return path.open("a", encoding="utf-8")


def _line(sample: Sample) -> str:
    return json.dumps({"kind": SAMPLE_KIND, **sample.fields()}, separators=(",", ":")) + "\n"
