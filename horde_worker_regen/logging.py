"""Log sinks for every process: console, bridge and trace files, secrets redacted everywhere.

`logs/bridge.log` holds everything at the chosen level, `logs/trace.log` warnings and
errors with their tracebacks. A child process numbered n writes `bridge_<n>.log` and
`trace_<n>.log` instead. Files rotate daily and only the last week is kept.

Redaction happens in a patcher, before any sink sees a record, and covers the message
and the formatted traceback (an exception's text can carry a key just as well).
"""

from __future__ import annotations

import logging as stdlib_logging
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

REDACTED = "<redacted>"
ROTATION = "00:00"
RETENTION_FILES = 7
_MIN_SECRET_LENGTH = 6
_VERBOSITY_LEVELS = {-2: "ERROR", -1: "WARNING", 0: "INFO", 1: "DEBUG", 2: "TRACE"}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str | None]) -> None:
    """Add values that must never appear in any log line (API keys, tokens)."""
    with _secrets_lock:
        for value in values:
            # Very short values would blank out ordinary words; real keys are long.
            if value and len(value) >= _MIN_SECRET_LENGTH:
                _secrets.add(value)


def redact(text: str) -> str:
    """The text with every registered secret replaced."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def level_for_verbosity(verbosity: int) -> str:
    """The console and bridge.log level for a -v/-q count (each -v one more detailed)."""
    return _VERBOSITY_LEVELS[max(-2, min(2, verbosity))]


def _redacting_patcher(record: Record) -> None:
    record["message"] = redact(record["message"])
    extra: dict[str, Any] = record["extra"]
    error = record["exception"]
    if error is not None and error.type is not None:
        text = "".join(traceback.format_exception(error.type, error.value, error.traceback))
        extra["traceback"] = "\n" + redact(text).rstrip("\n")
    else:
        extra["traceback"] = ""


_FILE_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {process} | {name}:{function}:{line}"
    " - {message}{extra[traceback]}\n"
)


def _file_format(record: Record) -> str:
    return _FILE_FORMAT


def _console_format_with_traceback(record: Record) -> str:
    return "<green>{time:HH:mm:ss}</green> | <level>{level: <7}</level> | <level>{message}</level>{extra[traceback]}\n"


def _console_format(record: Record) -> str:
    return "<green>{time:HH:mm:ss}</green> | <level>{level: <7}</level> | <level>{message}</level>\n"


class _InterceptHandler(stdlib_logging.Handler):
    """Route libraries' standard-library logging through loguru (and so through redaction)."""

    def emit(self, record: stdlib_logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def log_file_names(process_index: int | None) -> tuple[str, str]:
    """The bridge and trace file names for the main process (None) or child n."""
    suffix = "" if process_index is None else f"_{process_index}"
    return f"bridge{suffix}.log", f"trace{suffix}.log"


def configure_logging(
    logs_dir: Path,
    verbosity: int = 0,
    process_index: int | None = None,
    secrets: Iterable[str | None] = (),
    console: bool = True,
) -> None:
    """Replace every loguru sink with this process's console and file sinks."""
    register_secrets(secrets)
    level = level_for_verbosity(verbosity)
    logger.remove()
    logger.configure(patcher=_redacting_patcher)
    if console:
        console_format = _console_format_with_traceback if verbosity > 0 else _console_format
        logger.add(sys.stderr, level=level, format=console_format, colorize=None, backtrace=False, diagnose=False)
    logs_dir.mkdir(parents=True, exist_ok=True)
    bridge_name, trace_name = log_file_names(process_index)
    common: dict[str, Any] = {
        "rotation": ROTATION,
        "retention": RETENTION_FILES,
        "encoding": "utf-8",
        "format": _file_format,
        "backtrace": False,
        "diagnose": False,  # diagnose prints local variables, which can hold the API key
    }
    logger.add(logs_dir / bridge_name, level=level, **common)
    logger.add(logs_dir / trace_name, level="WARNING", **common)
    stdlib_logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
