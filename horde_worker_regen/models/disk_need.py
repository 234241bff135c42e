"""The start-up disk check: what the models still to download need, against what is free where they go.

Counted: each served image model whose file is not on disk yet (its reference size, less a
`.partial` already there) and each wanted post-processor file likewise (catalogue sizes: the level-13
ones and strip_background's u2net.onnx). A file already on disk is only hashed, so it counts nothing.
Each download checks the space again before it starts (`Downloader.check_space`); this is the early
warning, for all of them at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.downloads import DISK_MARGIN_BYTES, DiskUsage
from horde_worker_regen.models.post_processor_store import post_processor_bytes_to_download
from horde_worker_regen.models.store import plans_for

GB = 1024**3


@dataclass(frozen=True)
class DiskNeed:
    """Bytes still to download below `folder`, by kind, and the bytes free there."""

    folder: Path
    free_bytes: int
    image_model_bytes: int
    post_processor_bytes: int

    @property
    def bytes_to_download(self) -> int:
        """Everything still to download."""
        return self.image_model_bytes + self.post_processor_bytes

    @property
    def fits(self) -> bool:
        """Whether it all fits, with the margin each download keeps free."""
        return self.bytes_to_download == 0 or self.bytes_to_download + DISK_MARGIN_BYTES <= self.free_bytes

    def describe(self) -> str:
        """One line for the log: the need by kind, the free space, and what to do when it does not fit."""
        line = (
            f"Still to download: {self.bytes_to_download / GB:.1f} GB (image models {self.image_model_bytes / GB:.1f} "
            f"GB, post-processors {self.post_processor_bytes / GB:.1f} GB); {self.free_bytes / GB:.1f} GB free on "
            f"{self.folder}."
        )
        if self.fits:
            return line
        return (
            f"{line} Not all of it fits: the models whose files do not fit will not be offered. Free some space "
            "or move cache_home."
        )


def image_model_bytes(data: BridgeData, models: Iterable[str]) -> int:
    """Bytes the served image models' missing files still need (a model of several files counts 0: no size)."""
    total = 0
    for plan in plans_for(data, models):
        if plan.size is None or plan.custom_path is not None:
            continue
        paths = [file.path_under(data.cache_home) for file in plan.files]
        if paths and not all(path.is_file() for path in paths):
            partial = paths[0].with_name(paths[0].name + ".partial")
            total += max(0, plan.size - (partial.stat().st_size if partial.is_file() else 0))
    return total


def existing_folder(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (cache_home may not have been made yet)."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_need(
    data: BridgeData,
    models: Iterable[str],
    *,
    fetch_files: bool = True,
    disk_usage: Callable[[Path], DiskUsage] = shutil.disk_usage,  # type: ignore[assignment]
) -> DiskNeed:
    """What `data`'s image models and post-processors still need on the disk of `cache_home`.

    `fetch_files` False (a backend that reads no model files): nothing is downloaded, nothing counts."""
    folder = existing_folder(data.cache_home)
    if not fetch_files:
        return DiskNeed(folder, disk_usage(folder).free, 0, 0)
    images, post_processors = image_model_bytes(data, models), post_processor_bytes_to_download(data)
    return DiskNeed(folder, disk_usage(folder).free, images, post_processors)


def log_disk_need(need: DiskNeed) -> None:
    """One line when anything is still to download: INFO when it fits, WARNING when it does not."""
    if not need.fits:
        logger.warning(need.describe())
    elif need.bytes_to_download:
        logger.info(need.describe())
