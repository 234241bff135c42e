"""The one place that knows the secrets, and the text streams that never let them through.

A secret is replaced wherever it appears, in every spelling a library may print it in: as written,
stripped of surrounding blanks, and escaped the way `repr`, `ascii` and JSON escape it (a key with a
quote, a newline or a non-ASCII letter is printed escaped by pydantic, and would slip past a plain
search).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TextIO

REDACTED = "<redacted>"
# The bridgeData fields that hold secrets: registered as read, before they are validated, because a
# validation error may quote the value it refused.
SECRET_FIELDS = ("api_key", "civitai_api_token", "dashboard_token")
# Very short values would blank out ordinary words; a real key is 22 characters long.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_ordered: list[str] = []  # longest first: a secret that contains another is replaced whole
_lock = threading.Lock()


def spellings(value: str) -> set[str]:
    """The ways a library may print `value`: raw, stripped, and escaped like repr, ascii and JSON."""
    found = {value, value.strip()}
    for escaped in (repr(value), ascii(value), json.dumps(value), json.dumps(value, ensure_ascii=False)):
        found.add(escaped[1:-1])
    return {spelling for spelling in found if len(spelling) >= MIN_SECRET_LENGTH}


def register_secrets(values: Iterable[object]) -> None:
    """Add values that must never appear anywhere (API keys, tokens); non-text values by their text."""
    with _lock:
        for value in values:
            if value is None or isinstance(value, bool):
                continue
            _secrets.update(spellings(value if isinstance(value, str) else str(value)))
        _ordered[:] = sorted(_secrets, key=len, reverse=True)


def redact(text: str) -> str:
    """The text with every registered secret replaced."""
    for secret in tuple(_ordered):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingStream:
    """A text stream that redacts whole lines before passing them on.

    Output is held until its line is complete (a secret split over two writes is still caught), and
    a little longer when a secret spans lines; `flush` passes on what is held, so prompts and
    progress bars are not delayed past a flush.
    """

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Queue text; complete lines go out redacted."""
        with self._lock:
            self._pending = redact(self._pending + text)
            # A secret that spans lines may have arrived in part: keep back as much as it could hold.
            keep_back = max((len(secret) for secret in _ordered if "\n" in secret), default=0)
            end = self._pending.rfind("\n", 0, max(0, len(self._pending) - keep_back + 1)) + 1
            if end:
                out, self._pending = self._pending[:end], self._pending[end:]
                self.target.write(out)
        return len(text)

    def flush(self) -> None:
        """Pass on what is held (redacted), then flush the target."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self.target.write(redact(pending))
        self.target.flush()

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line."""
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        """Whether the target is a terminal (libraries choose colours and progress bars from it)."""
        return self.target.isatty()

    def fileno(self) -> int:
        """The target's descriptor (for libraries that hand it to a subprocess)."""
        return self.target.fileno()

    @property
    def encoding(self) -> str:
        """The target's encoding."""
        return getattr(self.target, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> object:
        return getattr(self.target, name)
