"""The event log as a JSON-lines file: what `run --metrics-file PATH` writes, one record per line.

Each line is one `Event.as_json()` object, written and flushed as it happens, so the file can be read
while the worker runs and holds everything up to a crash. The first record is `worker_started`, the
last `worker_stopped` (with the main process's CPU and memory and the kudos figures). Reading skips a
torn last line (a crash mid-write) instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from horde_worker_regen.jobs.events import Event


class EventFile:
    """A sink of the event log that appends each record to a file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(event.as_json(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Stop writing (later records are ignored)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_event_file(path: Path) -> list[dict[str, Any]]:
    """Every complete record of an event file, in order; an unreadable line is skipped."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
