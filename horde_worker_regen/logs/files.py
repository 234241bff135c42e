"""Log files that rotate daily, keep a week, and never let a full disk disturb the worker.

A write that fails (no space left, a quota, a read-only or vanished folder) pauses file logging for
the whole process: one ERROR goes to the console, the lines in between are counted and lost, and
writing is tried again at most every `resume_check_s`. When a write succeeds again the console and
the file say so. Without this, every failed line would print a logging-error block of its own.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RETENTION_FILES = 7
RESUME_CHECK_S = 10.0
# Writing resumes only with this much room: a nearly full disk that takes a line now and then would
# otherwise pause and resume (and say so) over and over.
RESUME_FREE_BYTES = 1024 * 1024

Notify = Callable[[str, str], None]  # (level name, message): straight to the console, never to a file


@dataclass
class FileLoggingState:
    """Whether this process's log files are paused, shared by all of them: one outage, one ERROR."""

    notify: Notify
    resume_check_s: float = RESUME_CHECK_S
    paused: bool = False
    lost_lines: int = 0
    last_try: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pause(self, folder: Path, error: OSError) -> None:
        """Stop writing files (announced once per outage)."""
        with self.lock:
            first, self.paused = not self.paused, True
            self.last_try = time.monotonic()
            self.lost_lines += 1
        if first:
            reason = error.strerror or type(error).__name__
            self.notify(
                "ERROR",
                f"Cannot write log files in {folder} ({reason}): file logging is paused and the "
                "worker keeps running; it resumes by itself once the disk has room again.",
            )

    def may_try(self, folder: Path) -> bool:
        """Whether a file may write now: always, unless paused; then at most once per `resume_check_s`,
        and only once the disk has `RESUME_FREE_BYTES` free."""
        with self.lock:
            if not self.paused:
                return True
            now = time.monotonic()
            if now - self.last_try >= self.resume_check_s:
                self.last_try = now
                if _free_bytes(folder) >= RESUME_FREE_BYTES:
                    return True
            self.lost_lines += 1
            return False

    def resumed(self) -> str | None:
        """After a successful write: the notice to give if this ends an outage."""
        with self.lock:
            if not self.paused:
                return None
            self.paused, lost, self.lost_lines = False, self.lost_lines, 0
        message = f"File logging resumed; {lost} log entries were not written while it was paused."
        self.notify("INFO", message)
        return message


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def next_midnight(now: datetime.datetime) -> datetime.datetime:
    """The rotation time after `now` (local time)."""
    return datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time())


class LogFile:
    """A loguru sink writing one file (unbuffered bytes: a failed write leaves nothing half-queued)."""

    def __init__(self, path: Path, state: FileLoggingState) -> None:
        self.path = path
        self.state = state
        self._file: int | None = None
        self._rotate_at = next_midnight(datetime.datetime.now())

    def open(self) -> None:
        """Create the file now (so that every process's files exist from its start), or pause."""
        try:
            self._write_all(b"")
        except OSError as error:
            self._close()
            self.state.pause(self.path.parent, error)

    def write(self, message: str) -> None:
        """Append one formatted record; on failure pause file logging instead of raising."""
        if not self.state.may_try(self.path.parent):
            return
        try:
            self._rotate_if_due()
            self._write_all(message.encode("utf-8", "replace"))
        except OSError as error:
            self._close()
            self.state.pause(self.path.parent, error)
            return
        notice = self.state.resumed()
        if notice is not None:
            try:
                self._write_all(f"{notice}\n".encode())
            except OSError:
                self._close()

    def stop(self) -> None:
        """Close the file (loguru calls this when the sink is removed)."""
        self._close()

    def _write_all(self, data: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(self._file, view)
            view = view[written:]

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.close(self._file)
            self._file = None

    def _rotate_if_due(self) -> None:
        now = datetime.datetime.now()
        if now < self._rotate_at:
            return
        self._close()
        day = (self._rotate_at - datetime.timedelta(days=1)).date().isoformat()
        if self.path.exists():
            self.path.replace(self._free_name(day))
        self._rotate_at = next_midnight(now)
        self._remove_old()

    def _free_name(self, day: str) -> Path:
        candidate = self.path.with_name(f"{self.path.stem}.{day}{self.path.suffix}")
        counter = 1
        while candidate.exists():
            counter += 1
            candidate = self.path.with_name(f"{self.path.stem}.{day}.{counter}{self.path.suffix}")
        return candidate

    def _remove_old(self) -> None:
        rotated = sorted(
            self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}"),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for old in rotated[RETENTION_FILES:]:
            old.unlink(missing_ok=True)
