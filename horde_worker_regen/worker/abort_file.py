"""The `.abort` file the official worker reads: its appearance in the working directory or the logs
folder aborts the run like a second signal. A plain file offers nothing to wait on, so it is polled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from loguru import logger

ABORT_FILE = ".abort"
ABORT_FILE_POLL_S = 0.5


def abort_file_paths(logs_dir: Path) -> list[Path]:
    """Where an `.abort` file is looked for."""
    return [Path.cwd() / ABORT_FILE, logs_dir / ABORT_FILE]


def remove_stale_abort_files(paths: list[Path]) -> None:
    """Files left from an earlier run, which would abort this one at once."""
    for path in paths:
        if path.exists():
            logger.warning(f"Removed {path}, left from an earlier run (it would abort this one at once)")
            path.unlink(missing_ok=True)


async def watch_abort_files(paths: list[Path], aborting: asyncio.Event, on_found: Callable[[Path], None]) -> None:
    """Until `aborting` is set: the first abort file to appear is removed and handed to `on_found`."""
    while not aborting.is_set():
        for path in paths:
            if path.exists():
                path.unlink(missing_ok=True)
                on_found(path)
                return
        await asyncio.sleep(ABORT_FILE_POLL_S)
