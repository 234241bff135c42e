"""Process-wide hooks: everything a process prints or raises goes through loguru, and so through redaction.

The main process wraps `sys.stdout`/`sys.stderr` in `RedactingStream`s and logs uncaught exceptions
(main thread and other threads) as records. A child process goes further: its descriptors 1 and 2
become a pipe read into the log, so a C library's output and a stray `print` reach `trace_<n>.log` as
third-party lines, never the operator's console. Standard `logging` (asyncio's exception handler
included) and `warnings` are routed into loguru in every process.
"""

from __future__ import annotations

import io
import logging as stdlib_logging
import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from loguru import logger

from horde_worker_regen.logs.redaction import RedactingStream
from horde_worker_regen.logs.routing import OWN_PACKAGE, OWN_STDLIB_LOGGERS

_in_log = threading.local()  # set while a line is being logged: output written then must not loop back


class InterceptHandler(stdlib_logging.Handler):
    """Route standard-library `logging` records into loguru, tagged third-party unless they are ours."""

    def emit(self, record: stdlib_logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        name = record.name
        ours = name.startswith(OWN_PACKAGE) or (name in OWN_STDLIB_LOGGERS and record.levelno >= stdlib_logging.ERROR)

        def place(log_record: Any) -> None:
            log_record.update(name=name, function=record.funcName, line=record.lineno)

        logger.patch(place).opt(exception=record.exc_info).bind(third_party=not ours).log(level, record.getMessage())


def route_standard_logging() -> None:
    """Send standard `logging` and `warnings` through loguru."""
    stdlib_logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    stdlib_logging.captureWarnings(True)


def log_output_line(origin: str, line: str) -> None:
    """One line a library printed, as a third-party record (so DEBUG for the operator, kept in the trace log)."""
    if getattr(_in_log, "active", False):
        return  # written while logging (a sink's own complaint): dropping it is better than a loop
    _in_log.active = True
    try:
        logger.patch(lambda record: record.update({"name": origin})).bind(third_party=True).info(line)
    finally:
        _in_log.active = False


class LineToLog(io.TextIOBase):
    """A text stream whose complete lines become third-party log records."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Queue text; every complete line is logged."""
        with self._lock:
            lines = (self._pending + text).replace("\r", "\n").split("\n")
            self._pending = lines.pop()
        for line in lines:
            log_output_line(self.origin, line)
        return len(text)

    def flush(self) -> None:
        """Log what is held."""
        with self._lock:
            pending, self._pending = self._pending, ""
        if pending:
            log_output_line(self.origin, pending)


def _read_into_log(read_fd: int) -> None:
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            log_output_line("output", line.rstrip("\n"))


def capture_child_output() -> TextIO:
    """Route this process's descriptors 1 and 2 and `sys.stdout`/`sys.stderr` into the log.

    Returns a stream on the original stderr, for the console sink. Python-level writes are logged
    at once (nothing lost if the process ends right after); a C library's writes go through a pipe
    read by a daemon thread.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=_read_into_log, args=(read_fd,), name="output-to-log", daemon=True).start()
    sys.stdout = LineToLog("stdout")
    sys.stderr = LineToLog("stderr")
    return console


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


def log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None, where: str = "") -> None:
    """An exception nothing caught, as a CRITICAL record (redacted like every other)."""
    if issubclass(kind, KeyboardInterrupt):
        return
    place = f" in thread {where}" if where else ""
    logger.opt(exception=(kind, error, trace)).critical(
        f"Unexpected error{place}: {kind.__name__}: {error} (the traceback is in the trace log)"
    )


def _thread_hook(arguments: threading.ExceptHookArgs) -> None:
    if arguments.exc_value is None:
        return
    where = arguments.thread.name if arguments.thread is not None else "?"
    log_uncaught(arguments.exc_type, arguments.exc_value, arguments.exc_traceback, where)


def _main_hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    log_uncaught(kind, error, trace)


def install_exception_hooks() -> None:
    """Uncaught exceptions of every thread become log records."""
    sys.excepthook = _main_hook
    threading.excepthook = _thread_hook


def wrap_standard_streams() -> None:
    """Redact everything written to `sys.stdout` and `sys.stderr` (idempotent)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
