"""One worker per spool folder: an exclusive lock on `<spool folder>/.worker.lock` for the worker's lifetime.

A second worker on the same folder (the same name and cache_home, the same spool_dir, or the same worker
started twice) would resume the first one's results and delete its unfinished writes, so it must not
start. The lock is an advisory `flock` (`msvcrt.locking` on Windows), which the system releases when the
process ends however it ends, so a killed worker never leaves a stale lock behind. The file itself is
left in place: removing it would let a third process lock a fresh file while the second holds the old one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from loguru import logger

LOCK_NAME = ".worker.lock"


class SpoolInUse(RuntimeError):
    """Another running process holds the spool folder's lock."""


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SpoolLock:
    """The held lock of one spool folder (`None` file descriptor: the folder could not be used at all)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def take(cls, folder: Path, worker_name: str) -> SpoolLock:
        """Lock `folder` for this process; SpoolInUse when another worker has it.

        A folder that cannot be created or written is not a reason to refuse to start: the spool reports
        its failed writes and results go out from memory, as they would without a lock.
        """
        path = folder / LOCK_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            logger.warning(
                f"Cannot lock the spool folder {folder} ({error.strerror or error}); "
                "nothing keeps a second worker from using it"
            )
            return cls(None)
        if not _try_lock(fd):
            os.close(fd)
            raise SpoolInUse(
                f"another worker is already running with the spool folder {folder} (this worker, '{worker_name}', "
                f"started twice, or another worker with the same dreamer_name and cache_home, or the same "
                f"spool_dir); it holds {path}. Stop that worker, or give this one its own dreamer_name or spool_dir"
            )
        return cls(fd)

    def release(self) -> None:
        """Let the lock go (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
