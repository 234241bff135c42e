"""Getting one post-processor file onto disk, verified: by its published sha256, or by the one recorded first.

A file with a published sha256 (the catalogue's, or the one an operator gave with a mirror) is
checked like an image model's: downloaded with the `Downloader`, which refuses other bytes, and
recorded in the verified manifest so that a restart trusts it by size and mtime. A file without one
is trusted on first use: its first complete download (or the copy found on disk, if it was never
recorded) has its sha256 recorded in the manifest, with one INFO line saying so, and every later
copy (after the file was deleted, or changed on disk) must have that same hash or is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loguru import logger

from horde_worker_regen.models.downloads import ChecksumMismatch, Downloader, sha256_of
from horde_worker_regen.models.manifest import MANIFEST_NAME, VerifiedManifest
from horde_worker_regen.models.post_processor_files import ManagedFile

# Where the hash a download is checked against comes from, for the message of a mismatch.
LISTED_HASH = "the post-processor catalogue (or post_processor_sources)"
RECORDED_HASH = f"its first download (recorded in {MANIFEST_NAME})"


def shown_url(url: str) -> str:
    """`url` as a log line may show it: no user name or password, no query (a mirror's token may be there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", ""))


def bytes_to_fetch(files: Iterable[ManagedFile], cache_home: Path) -> int:
    """What fetching `files` will still write below `cache_home`: each file not on disk at its size, less a
    `.partial` already there (a file on disk is only hashed; an unknown size counts 0; repeats count once)."""
    total = 0
    for path, size in {file.path_under(cache_home): file.size for file in files}.items():
        if size is None or path.is_file():
            continue
        partial = path.with_name(path.name + ".partial")
        total += max(0, size - (partial.stat().st_size if partial.is_file() else 0))
    return total


class ManagedFileStore:
    """Checks and fetches post-processor files below `cache_home`."""

    def __init__(self, cache_home: Path, downloader: Downloader) -> None:
        self.cache_home = cache_home
        self.downloader = downloader
        self.manifest = VerifiedManifest(cache_home / MANIFEST_NAME)

    def expected_sha256(self, file: ManagedFile) -> str | None:
        """The hash `file` must have: the published one, else the one recorded at its first download."""
        return file.sha256 or self.manifest.recorded_sha256(file.path_under(self.cache_home))

    def is_ready(self, file: ManagedFile) -> bool:
        """Whether `file` is on disk and verified, without hashing or downloading anything."""
        path = file.path_under(self.cache_home)
        return self.manifest.is_verified(path, self.expected_sha256(file))

    async def ensure(self, file: ManagedFile) -> None:
        """Verify `file` on disk or download it; raises DownloadFailed (ChecksumMismatch for other bytes)."""
        if self.is_ready(file):
            return
        path = file.path_under(self.cache_home)
        if path.is_file() and await self._accept_on_disk(file, path):
            return
        await self._download(file, path)

    async def _accept_on_disk(self, file: ManagedFile, path: Path) -> bool:
        """Whether the copy found on disk (not yet checked, or changed since) can stay; one that cannot is removed."""
        expected = self.expected_sha256(file)
        logger.info(f"Verifying {path.name} (found on disk, not yet checked)")
        actual = await asyncio.to_thread(sha256_of, path)
        if expected is None:
            self.manifest.record(path, actual)
            logger.info(
                f"{path.name} was found on disk and has no published sha256: recorded its sha256 {actual}; "
                "later copies are checked against it"
            )
            return True
        if actual == expected:
            self.manifest.record(path, actual)
            return True
        logger.warning(f"{path.name} on disk has sha256 {actual}, not {expected}; downloading it again")
        path.unlink()
        return False

    async def _download(self, file: ManagedFile, path: Path) -> None:
        expected = self.expected_sha256(file)
        logger.info(f"Downloading {path.name} from {shown_url(file.url)}")
        if file.sha256 is not None or expected is None:
            await self.downloader.fetch(file.url, path, sha256=expected, size=file.size, sha256_from=LISTED_HASH)
        else:
            await self._download_as_first(file, path, expected)
        if expected is not None:
            self.manifest.record(path, expected)
            return
        actual = await asyncio.to_thread(sha256_of, path)
        self.manifest.record(path, actual)
        logger.info(
            f"{path.name} has no published sha256: recorded the sha256 of its first download, {actual}; "
            "later copies are checked against it"
        )

    async def _download_as_first(self, file: ManagedFile, path: Path, recorded: str) -> None:
        """A file trusted on first use, downloaded again: it must be the bytes recorded the first time."""
        try:
            await self.downloader.fetch(file.url, path, sha256=recorded, size=file.size, sha256_from=RECORDED_HASH)
        except ChecksumMismatch as error:
            raise ChecksumMismatch(
                f"{error}. To accept these bytes, give their sha256 in post_processor_sources"
            ) from None
