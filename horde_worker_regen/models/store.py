"""Which served models are on disk and verified, and getting the rest there.

A model is offered to the horde only once every file the reference lists for it is on disk with the
right sha256. Files verified before are trusted by their size and mtime (`VerifiedManifest`); a file
found on disk but not in the manifest is hashed once; a missing one is downloaded. Custom models are
the operator's own files: they are only checked to exist, never hashed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.downloads import Downloader, DownloadFailed, describe_error, sha256_of
from horde_worker_regen.models.files import ModelFile, files_of, size_of
from horde_worker_regen.models.manifest import MANIFEST_NAME, VerifiedManifest
from horde_worker_regen.models.reference_cache import ReferencePaths


@dataclass(frozen=True)
class ModelPlan:
    """One served model and the files it needs (none for a model the reference gives no download for)."""

    name: str
    files: tuple[ModelFile, ...] = ()
    size: int | None = None
    custom_path: Path | None = None


def plans_for(data: BridgeData, models: Iterable[str]) -> list[ModelPlan]:
    """The plan of each model, from the cached reference and bridgeData's custom models."""
    custom = {model.name: model.filepath for model in data.custom_models}
    try:
        reference: dict[str, Any] = json.loads(ReferencePaths(data.cache_home).reference.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reference = {}
    plans = []
    for name in models:
        if name in custom:
            plans.append(ModelPlan(name, custom_path=custom[name].expanduser().resolve()))
            continue
        entry = reference.get(name)
        entry = entry if isinstance(entry, dict) else {}
        files = files_of(entry)
        plans.append(ModelPlan(name, files, size_of(entry) if len(files) == 1 else None))
    return plans


class ModelStore:
    """Checks and fetches the files of model plans below `cache_home`."""

    def __init__(self, cache_home: Path, downloader: Downloader) -> None:
        self.cache_home = cache_home
        self.downloader = downloader
        self.manifest = VerifiedManifest(cache_home / MANIFEST_NAME)

    def is_ready(self, plan: ModelPlan) -> bool:
        """True when the model can be offered now without hashing or downloading anything."""
        if plan.custom_path is not None:
            return plan.custom_path.is_file()
        return all(self._file_ready(file) for file in plan.files)

    def _file_ready(self, file: ModelFile) -> bool:
        path = file.path_under(self.cache_home)
        if file.sha256 is None:
            return path.is_file()
        return self.manifest.is_verified(path, file.sha256)

    async def ensure(self, plan: ModelPlan) -> str | None:
        """Verify or download every file of `plan`; None when ready, else why not."""
        if plan.custom_path is not None:
            return None if plan.custom_path.is_file() else f"custom model file {plan.custom_path} does not exist"
        for file in plan.files:
            try:
                await self._ensure_file(file, plan.size)
            except DownloadFailed as error:
                return describe_error(error)
        return None

    async def _ensure_file(self, file: ModelFile, size: int | None) -> None:
        path = file.path_under(self.cache_home)
        if self._file_ready(file):
            return
        if path.is_file() and file.sha256 is not None:
            logger.info(f"Verifying {path.name} (found on disk, not yet checked)")
            if await asyncio.to_thread(sha256_of, path) == file.sha256:
                self.manifest.record(path, file.sha256)
                return
            logger.warning(f"{path.name} on disk does not match the reference's sha256; downloading it again")
            path.unlink()
        logger.info(f"Downloading {path.name} from {file.url}")
        await self.downloader.fetch(file.url, path, sha256=file.sha256, size=size)
        if file.sha256 is not None:
            self.manifest.record(path, file.sha256)


async def ensure_all(store: ModelStore, plans: list[ModelPlan], on_ready: Callable[[str], None]) -> dict[str, str]:
    """Fetch the plans one after another, calling `on_ready` as each is ready; returns the failures."""
    failures = {}
    for plan in plans:
        reason = await store.ensure(plan)
        if reason is None:
            on_ready(plan.name)
        else:
            failures[plan.name] = reason
            logger.error(f"Model '{plan.name}' will not be offered: {reason}")
    return failures
