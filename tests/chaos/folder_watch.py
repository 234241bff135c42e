"""`FolderWatch`: wake when anything in a folder (the folder itself included) is opened, through Linux
inotify (`IN_OPEN`), read on the event loop.

The chaos suite uses it to see a new child process of the worker the moment it shows itself, rather
than by sampling the process tree on a timer: see `ProcessWatch.next_child`. The standard library
has no inotify binding, so the three libc calls go through ctypes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from pathlib import Path
from types import TracebackType

IN_OPEN = 0x00000020  # <sys/inotify.h>: a file or folder was opened
READ_SIZE = 64 * 1024  # room for many events of the largest size (a header and a NAME_MAX name)

_libc = ctypes.CDLL(None, use_errno=True)


class FolderWatch:
    """Openings in one folder, as a cue to look again at what the caller waits for (a context manager)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd = -1
        self._opened = asyncio.Event()

    def __enter__(self) -> FolderWatch:
        fd: int = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if _libc.inotify_add_watch(fd, os.fsencode(self.folder), IN_OPEN) < 0:
            error = ctypes.get_errno()
            os.close(fd)
            raise OSError(error, f"cannot watch {self.folder}")
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._drain)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)

    def _drain(self) -> None:
        """The events themselves do not matter, only that there were some: read them all, then wake."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, READ_SIZE):
                pass
        self._opened.set()

    async def opened(self) -> None:
        """Return once something in the folder was opened since the last return (or since the watch began)."""
        await self._opened.wait()
        self._opened.clear()
