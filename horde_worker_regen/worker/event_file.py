"""The event log as a JSON-lines file: what `run --metrics-file PATH` writes, one record per line.

Each line is one `Event.as_json()` object, written and flushed as it happens, so the file can be read
while the worker runs and holds everything up to a crash. `worker_started` marks when serving begins
(after the children's `child_started` records) with the main process's CPU and memory so far; the
last record is `worker_stopped`, with the same figures at exit and the kudos. Text values are
redacted like log lines (a reason may quote a URL or a library's message that holds a key).

The file never stops the worker: if it cannot be opened, or a write fails (a full disk, a file closed
under it), that is logged once and the worker goes on without it. Reading takes the same view from
the other side: a torn last line (a crash mid-write) or any line that is not a record is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from loguru import logger

from horde_worker_regen.jobs.events import Event
from horde_worker_regen.logs.redaction import redact


class EventFile:
    """A sink of the event log that appends each record to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0  # records written whole
        self._file: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")
        except OSError as error:
            logger.error(f"Cannot write the metrics file {path} ({error}); the worker goes on without it")

    def __repr__(self) -> str:
        return f"the metrics file {self.path}"

    @property
    def writing(self) -> bool:
        """Whether records still go to the file (False once it is closed or a write failed)."""
        return self._file is not None

    def __call__(self, event: Event) -> None:
        if self._file is None:
            return
        line = json.dumps(redacted(event.as_json()), separators=(",", ":")) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except (OSError, ValueError) as error:  # ValueError: the file was closed under us
            logger.error(
                f"Stopped writing the metrics file {self.path} after {self.written} records ({error}); "
                "the worker goes on without it"
            )
            self._abandon()
            return
        self.written += 1

    def close(self) -> None:
        """Stop writing (later records are ignored)."""
        if self._file is not None:
            self._abandon()

    def _abandon(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                file.close()  # flushes what is buffered: on a full disk that fails too
        except (OSError, ValueError):
            pass


def redacted(value: Any) -> Any:
    """`value` as plain JSON with every text in it redacted; anything else JSON cannot hold becomes text."""
    if isinstance(value, dict):
        return {str(name): redacted(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(value if isinstance(value, str) else str(value))


def parse_event_lines(text: str) -> list[dict[str, Any]]:
    """Every record in the text of an event file, in order: a JSON object with a text `kind` per line.

    Anything else on a line (a torn write, garbage, JSON too deep or too large to read) is skipped;
    this never raises.
    """
    records = []
    for line in text.split("\n"):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError, as is a too-long integer
            continue
        if isinstance(record, dict) and isinstance(record.get("kind"), str):
            records.append(record)
    return records


def read_event_file(path: Path) -> list[dict[str, Any]]:
    """Every complete record of an event file, in order (see `parse_event_lines`); OSError if unreadable."""
    return parse_event_lines(path.read_bytes().decode("utf-8", errors="replace"))
