"""A record of files already verified, so that a start does not hash gigabytes again.

A file counts as verified while its size and modification time match what was recorded when its
sha256 was checked; any change (a re-download, a truncation, an edit) sends it back to hashing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "verified_models.json"


@dataclass(frozen=True)
class FileStamp:
    """Size and mtime (ns) of a file when its sha256 was checked."""

    size: int
    mtime_ns: int
    sha256: str


def stamp_of(path: Path, sha256: str) -> FileStamp:
    """The current stamp of `path`, labelled with the hash it was found to have."""
    status = path.stat()
    return FileStamp(status.st_size, status.st_mtime_ns, sha256)


class VerifiedManifest:
    """The verified files, kept as JSON at `<cache_home>/verified_models.json`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, FileStamp] = _read(path)

    def is_verified(self, path: Path, sha256: str | None) -> bool:
        """True when `path` is unchanged since it was found to have `sha256` (any hash if None)."""
        recorded = self._entries.get(str(path))
        if recorded is None or (sha256 is not None and recorded.sha256 != sha256.lower()):
            return False
        try:
            status = path.stat()
        except OSError:
            return False
        return status.st_size == recorded.size and status.st_mtime_ns == recorded.mtime_ns

    def recorded_sha256(self, path: Path) -> str | None:
        """The sha256 last recorded for `path`, even if the file has changed or gone since; None if never."""
        recorded = self._entries.get(str(path))
        return recorded.sha256 if recorded is not None else None

    def record(self, path: Path, sha256: str) -> None:
        """Remember `path` as verified with `sha256` and save the manifest.

        Entries other holders of the same file recorded since this one read it are kept (the image
        models and the post-processors are fetched side by side, each with a manifest of its own)."""
        stamp = stamp_of(path, sha256.lower())
        self._entries = {**self._entries, **_read(self.path), str(path): stamp}
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        payload = {
            key: {"size": stamp.size, "mtime_ns": stamp.mtime_ns, "sha256": stamp.sha256}
            for key, stamp in self._entries.items()
        }
        partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        os.replace(partial, self.path)


def _read(path: Path) -> dict[str, FileStamp]:
    """The entries saved at `path`; none when it is missing or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    entries = {}
    for key, value in raw.items() if isinstance(raw, dict) else ():
        try:
            entries[key] = FileStamp(int(value["size"]), int(value["mtime_ns"]), str(value["sha256"]))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry only costs one re-hash
    return entries
