"""A config file that other users of the machine can read gives them the API key: say so, once."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from loguru import logger

from horde_worker_regen.logs.redaction import SECRET_FIELDS

GROUP_OR_OTHERS = 0o077
_warned: set[Path] = set()
_warned_lock = threading.Lock()


def readable_by_others(path: Path) -> bool:
    """Whether the file grants any permission to its group or to other users."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & GROUP_OR_OTHERS)


def holds_secret(sources: dict[str, str]) -> bool:
    """Whether a secret field's value came from the file (`sources`: field name to its origin)."""
    return any(sources.get(name, "").startswith("file") for name in SECRET_FIELDS)


def warn_if_exposed(path: Path, holds_secret: bool) -> bool:
    """Warn (once per file and process) when a file holding a secret is open to other users."""
    if not holds_secret or not readable_by_others(path):
        return False
    resolved = path.resolve()
    with _warned_lock:
        if resolved in _warned:
            return False
        _warned.add(resolved)
    logger.warning(f"{path} holds your API key and other users of this machine can read it. Run: chmod 600 {resolved}")
    return True
