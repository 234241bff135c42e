"""The on-disk LoRA / TI cache: which request refers to which file, and LRU eviction under a size cap.

`<cache_home>/lora/` and `<cache_home>/ti/` each keep an `index.json`: for every request reference
(`"123"`, `"v:456"` for a version id, or a name) the file it resolved to, and for every file its size,
when a job last used it and its CivitAI trigger words. A job whose LoRA is in the index starts
without asking CivitAI at all, trigger words included. The two folders share one size cap
(`share_budget`): when together they grow past it, the least recently used files of either go
first; a file the current job needs is never evicted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

INDEX_NAME = "index.json"


@dataclass
class CachedFile:
    """One cached file: its size, last use (wall clock, so it survives restarts) and trigger words."""

    size: int
    last_used: float
    triggers: tuple[str, ...] = ()


def _cached_file(raw: dict[str, Any]) -> CachedFile:
    """An index entry; an index written before trigger words were kept has none."""
    triggers = raw.get("triggers") or []
    if not isinstance(triggers, list):
        raise TypeError("triggers must be a list")
    return CachedFile(int(raw["size"]), float(raw["last_used"]), tuple(str(t) for t in triggers))


class LoraCache:
    """The index of one cache folder (`lora/` or `ti/`); its cap may be shared with other caches."""

    def __init__(self, folder: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._clock = clock
        self.refs: dict[str, str] = {}
        self.files: dict[str, CachedFile] = {}
        self.budget_group: list[LoraCache] = [self]  # the caches whose files count against `max_bytes`
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads((self.folder / INDEX_NAME).read_text(encoding="utf-8"))
            self.refs = {str(k): str(v) for k, v in raw.get("refs", {}).items()}
            self.files = {str(k): _cached_file(v) for k, v in raw["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.refs, self.files = {}, {}  # no index yet, or a damaged one: files get fetched again

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        files = {
            name: {"size": f.size, "last_used": f.last_used, "triggers": list(f.triggers)}
            for name, f in self.files.items()
        }
        partial = self.folder / (INDEX_NAME + ".partial")
        partial.write_text(json.dumps({"refs": self.refs, "files": files}, indent=1), encoding="utf-8")
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

    def triggers(self, name: str) -> tuple[str, ...]:
        """The trigger words recorded for the cached file `name` (none when unknown)."""
        cached = self.files.get(name)
        return cached.triggers if cached is not None else ()

    def add(self, ref: str, name: str, keep: Iterable[str] = (), triggers: Iterable[str] = ()) -> Path:
        """Record a file just downloaded into the folder for `ref`, then evict down to the cap."""
        path = self.folder / name
        self.refs[ref] = name
        self.files[name] = CachedFile(path.stat().st_size, self._clock(), tuple(triggers))
        self.evict(keep={name, *keep})
        self._save()
        return path

    def total_bytes(self) -> int:
        """Bytes of every indexed file in this folder."""
        return sum(f.size for f in self.files.values())

    def budget_bytes(self) -> int:
        """Bytes of every indexed file counted against the cap (this folder and those sharing it)."""
        return sum(cache.total_bytes() for cache in self.budget_group)

    def _drop(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)
        del self.files[name]
        self.refs = {ref: file for ref, file in self.refs.items() if file != name}

    def evict(self, keep: set[str]) -> list[str]:
        """Delete the least recently used files of the budget group (never this folder's `keep`) until under the cap."""
        evicted: list[str] = []
        candidates = sorted(
            (f.last_used, index, name)
            for index, cache in enumerate(self.budget_group)
            for name, f in cache.files.items()
            if not (cache is self and name in keep)
        )
        touched: set[int] = set()
        for _, index, name in candidates:
            if self.budget_bytes() <= self.max_bytes:
                break
            self.budget_group[index]._drop(name)
            touched.add(index)
            evicted.append(f"{self.budget_group[index].folder.name}/{name}")
        for index in touched:
            self.budget_group[index]._save()
        if evicted:
            cap_gb = self.max_bytes / 1024**3
            logger.info(f"LoRA/TI cache over {cap_gb:.0f} GB: removed {', '.join(evicted)}")
        return evicted


def share_budget(*caches: LoraCache) -> None:
    """Make `caches` count their files against one cap together (that of the first)."""
    group = list(caches)
    for cache in caches:
        cache.budget_group = group
        cache.max_bytes = caches[0].max_bytes
