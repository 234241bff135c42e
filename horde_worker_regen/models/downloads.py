"""Downloading one file: disk-space check first, `.partial` file, HTTP Range resume, sha256, atomic rename.

A download writes to `<dest>.partial`. A cut connection resumes from the bytes already there (a
`Range` request); a server that ignores the range starts the file over. Before a byte is written the
free space is compared with what is still to come (the reference's size, else `Content-Length`), and
the download is refused with a clear message when it cannot fit. A disk that fills up anyway (another
program writing, a wrong size) ends the download with `NotEnoughSpace` naming the file and the folder;
the `.partial` keeps what was written, for the next attempt to resume. Only a file whose sha256
matches is renamed into place, so a half or wrong file is never mistaken for a model.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp

from horde_worker_regen.models.progress import DownloadProgress, ProgressLog

CHUNK_BYTES = 1024 * 1024
RESUME_ATTEMPTS = 5
# Room kept free beyond the file itself, so a download never fills the disk to the last byte.
DISK_MARGIN_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 60.0
CIVITAI_HOSTS = ("civitai.com",)
_RETRYABLE = (
    aiohttp.ClientPayloadError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    asyncio.TimeoutError,
    ConnectionResetError,
)


class DiskUsage(NamedTuple):
    """The `shutil.disk_usage` shape."""

    total: int
    used: int
    free: int


class DownloadFailed(RuntimeError):
    """The file could not be downloaded; the message says why (`status`: the HTTP status, when one answered)."""

    def __init__(self, message: str, *, status: int | None = None, local: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.local = local  # this machine's fault (disk, checksum), not the server's


class NotEnoughSpace(DownloadFailed):
    """The disk cannot hold the file; nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, local=True)


class ChecksumMismatch(DownloadFailed):
    """The downloaded bytes do not have the sha256 the reference gives; the file was discarded."""

    def __init__(self, message: str) -> None:
        super().__init__(message, local=True)


def is_civitai(url: str, extra_hosts: tuple[str, ...] = ()) -> bool:
    """True for CivitAI URLs (and any host configured to stand in for it), which take the token."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == known or host.endswith("." + known) for known in CIVITAI_HOSTS + extra_hosts)


def sha256_of(path: Path) -> str:
    """The file's sha256, read in chunks (run it in a thread: it takes seconds per gigabyte)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _total_from(response: aiohttp.ClientResponse, offset: int) -> int | None:
    """The whole file's size from a 206's Content-Range or a 200's Content-Length."""
    if response.status == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    return offset + response.content_length if response.content_length is not None else None


@dataclass
class Downloader:
    """Downloads files over one aiohttp session; `progress` holds every file under way, by name."""

    session: aiohttp.ClientSession
    civitai_token: str | None = None
    token_hosts: tuple[str, ...] = ()
    disk_usage: Callable[[Path], DiskUsage] = shutil.disk_usage  # type: ignore[assignment]
    log: ProgressLog = field(default_factory=ProgressLog)
    attempts: int = RESUME_ATTEMPTS
    read_timeout: float = READ_TIMEOUT_S
    progress: dict[str, DownloadProgress] = field(default_factory=dict)

    def auth_headers(self, url: str) -> dict[str, str]:
        """The CivitAI token header when `url` is CivitAI's and a token is set; else nothing."""
        if self.civitai_token and is_civitai(url, self.token_hosts):
            return {"Authorization": f"Bearer {self.civitai_token}"}
        return {}

    def _headers(self, url: str, offset: int) -> dict[str, str]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return headers | self.auth_headers(url)

    def check_space(self, dest: Path, needed: int) -> None:
        """Refuse (NotEnoughSpace) when `needed` more bytes plus a margin do not fit beside `dest`."""
        free = self.disk_usage(dest.parent).free
        if needed + DISK_MARGIN_BYTES > free:
            mb = 1024 * 1024
            raise NotEnoughSpace(
                f"{dest.name} needs {needed / mb:.0f} MB more (plus {DISK_MARGIN_BYTES // mb} MB spare) but only "
                f"{free / mb:.0f} MB are free on {dest.parent}; free some space or move cache_home"
            )

    async def fetch(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str | None = None,
        size: int | None = None,
        total_timeout: float | None = None,
        sha256_from: str = "the reference",
    ) -> Path:
        """Download `url` to `dest` (resuming a `.partial` left there); returns `dest`.

        `sha256_from` names where the expected hash comes from, for the message of a mismatch."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        if size is not None:
            self.check_space(dest, max(0, size - _size(partial)))
        progress = DownloadProgress(dest.name, size, started_at=self.log.clock())
        self.progress[dest.name] = progress
        try:
            await asyncio.wait_for(self._fetch_with_resume(url, partial, progress), total_timeout)
            await self._verify(partial, sha256, sha256_from)
        except asyncio.TimeoutError:
            progress.error = f"not finished within {total_timeout:.0f} s"
            raise DownloadFailed(f"{dest.name}: {progress.error}") from None
        except DownloadFailed as error:
            progress.error = str(error)
            raise
        finally:
            self.progress.pop(dest.name, None)
        os.replace(partial, dest)
        progress.finished = True
        return dest

    async def _fetch_with_resume(self, url: str, partial: Path, progress: DownloadProgress) -> None:
        for attempt in range(self.attempts):
            try:
                await self._fetch_once(url, partial, progress)
                return
            except _RETRYABLE as error:
                if attempt + 1 == self.attempts:
                    raise DownloadFailed(
                        f"{partial.name}: connection kept failing ({error or type(error).__name__})"
                    ) from None
                progress.resumed_from = _size(partial)

    async def _fetch_once(self, url: str, partial: Path, progress: DownloadProgress) -> None:
        offset = _size(partial)
        timeout = aiohttp.ClientTimeout(sock_read=self.read_timeout)
        async with self.session.get(url, headers=self._headers(url, offset), timeout=timeout) as response:
            if response.status == 416 and offset:
                return  # the partial file already holds every byte; the checksum decides
            if response.status not in (200, 206):
                raise DownloadFailed(
                    f"{partial.name[:-8]}: the server answered HTTP {response.status}", status=response.status
                )
            if response.status == 200:
                offset = 0  # no range support: start over
            total = _total_from(response, offset)
            progress.total_bytes = total or progress.total_bytes
            if total is not None:
                self.check_space(partial, total - offset)
            progress.done_bytes = offset
            await self._write_body(response, partial, offset, progress)

    async def _write_body(
        self, response: aiohttp.ClientResponse, partial: Path, offset: int, progress: DownloadProgress
    ) -> None:
        try:
            with partial.open("r+b" if offset else "wb") as handle:
                if offset:  # resume: drop anything past the bytes the server will not resend ("wb" empties it)
                    handle.seek(offset)
                    handle.truncate()
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    handle.write(chunk)
                    progress.done_bytes += len(chunk)
                    self.log.update(progress)
        except aiohttp.ClientError:
            raise
        except OSError as error:
            raise _write_failed(partial, progress.done_bytes, error) from None
        if progress.total_bytes is not None and progress.done_bytes < progress.total_bytes:
            raise aiohttp.ClientPayloadError(f"body ended at {progress.done_bytes} of {progress.total_bytes} bytes")
        self.log.finish(progress)

    async def _verify(self, partial: Path, sha256: str | None, sha256_from: str) -> None:
        if sha256 is None:
            return
        actual = await asyncio.to_thread(sha256_of, partial)
        if actual != sha256.lower():
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{partial.name[:-8]}: sha256 is {actual}, {sha256_from} says {sha256.lower()}; the file was discarded"
            )


def _write_failed(partial: Path, written: int, error: OSError) -> DownloadFailed:
    """The error for a write that failed: a full disk says so, and what to do."""
    name = partial.name.removesuffix(".partial")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NotEnoughSpace(
            f"{name}: the disk holding {partial.parent} filled up after {written / 2**20:.0f} MB; free some space "
            f"or move cache_home (the {partial.name} file is kept, so the download resumes from there)"
        )
    return DownloadFailed(f"{name}: could not write {partial} ({error.strerror or error})", local=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def describe_error(error: BaseException) -> str:
    """A one-line reason for logs and reports."""
    return str(error) or type(error).__name__
