"""The last status snapshot on disk (`logs/last-status.json`), for when nobody can ask the worker any more.

A worker that crashed, hung or was stopped leaves its dashboard snapshot of a minute ago at most, and
the one it had as it stopped: what `support-bundle` attaches when no running worker answers. Text is
redacted like the event file's, the file is replaced whole (a crash mid-write leaves the previous one),
and a failed write (of any kind) is logged once and costs only this file.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from horde_worker_regen.worker.event_file import redacted

LAST_STATUS_FILE = "last-status.json"
WRITE_EVERY_S = 60.0


class LastStatusFile:
    """Writes `snapshot()` to `path` every `every_s` seconds and once more when stopped."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]], every_s: float = WRITE_EVERY_S) -> None:
        self.path = path
        self._snapshot = snapshot
        self._every_s = every_s
        self._failed = False
        self._task = asyncio.create_task(self._write_forever(), name="last status file")

    async def _write_forever(self) -> None:
        while True:
            await self.write()
            await asyncio.sleep(self._every_s)  # a period between writes, not a wait for anything

    async def write(self) -> None:
        """The snapshot now (taken on the loop, written in a thread); never raises, since it runs as the worker
        stops: a failure (a full disk, a snapshot that would not build) is logged once until a write succeeds."""
        try:
            text = json.dumps(redacted(self._snapshot()), indent=1)
            await asyncio.to_thread(_replace, self.path, text)
        except Exception as error:
            if not self._failed:
                logger.opt(exception=not isinstance(error, OSError)).warning(
                    f"Cannot write {self.path} ({error}); the worker goes on without it"
                )
            self._failed = True
        else:
            self._failed = False

    async def stop(self) -> None:
        """No more periodic writes; the snapshot as the worker stops is the last one."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.write()


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
