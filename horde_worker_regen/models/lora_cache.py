"""The on-disk LoRA / TI cache: which request refers to which file, and LRU eviction under a size cap.

`<cache_home>/lora/` and `<cache_home>/ti/` each keep an `index.json`: for every request reference
(`"123"`, `"v:456"` for a version id, or a name) the file it resolved to, and for every file its size
and when a job last used it. A job whose LoRA is in the index starts without asking CivitAI at all.
When the folder grows past its cap, the least recently used files go first; a file the current job
needs is never evicted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

INDEX_NAME = "index.json"


@dataclass
class CachedFile:
    """One cached file: its size and last use (wall clock, so it survives restarts)."""

    size: int
    last_used: float


class LoraCache:
    """The index of one cache folder (`lora/` or `ti/`)."""

    def __init__(self, folder: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._clock = clock
        self.refs: dict[str, str] = {}
        self.files: dict[str, CachedFile] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads((self.folder / INDEX_NAME).read_text(encoding="utf-8"))
            self.refs = {str(k): str(v) for k, v in raw.get("refs", {}).items()}
            self.files = {str(k): CachedFile(int(v["size"]), float(v["last_used"])) for k, v in raw["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.refs, self.files = {}, {}  # no index yet, or a damaged one: files get fetched again

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"refs": self.refs,
                   "files": {name: {"size": f.size, "last_used": f.last_used} for name, f in self.files.items()}}
        partial = self.folder / (INDEX_NAME + ".partial")
        partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        os.replace(partial, self.folder / INDEX_NAME)

    def lookup(self, ref: str) -> Path | None:
        """The cached file for `ref` (marked as used now), or None when it has to be fetched."""
        name = self.refs.get(ref)
        if name is None or name not in self.files:
            return None
        path = self.folder / name
        if not path.is_file() or path.stat().st_size != self.files[name].size:
            return None
        self.files[name].last_used = self._clock()
        self._save()
        return path

    def add(self, ref: str, name: str, keep: Iterable[str] = ()) -> Path:
        """Record a file just downloaded into the folder for `ref`, then evict down to the cap."""
        path = self.folder / name
        self.refs[ref] = name
        self.files[name] = CachedFile(path.stat().st_size, self._clock())
        self.evict(keep={name, *keep})
        self._save()
        return path

    def total_bytes(self) -> int:
        """Bytes of every indexed file."""
        return sum(f.size for f in self.files.values())

    def evict(self, keep: set[str]) -> list[str]:
        """Delete least recently used files (never those in `keep`) until under the cap."""
        evicted = []
        candidates = sorted((f.last_used, name) for name, f in self.files.items() if name not in keep)
        for _, name in candidates:
            if self.total_bytes() <= self.max_bytes:
                break
            (self.folder / name).unlink(missing_ok=True)
            del self.files[name]
            self.refs = {ref: file for ref, file in self.refs.items() if file != name}
            evicted.append(name)
        if evicted:
            cap_gb = self.max_bytes / 1024**3
            logger.info(f"{self.folder.name} cache over {cap_gb:.0f} GB: removed {', '.join(evicted)}")
        return evicted
