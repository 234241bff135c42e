"""The files the worker fetches while it already serves, in background tasks.

The image models still missing are offered one by one as each lands; the level-13 post-processors'
files (none for the fake backend) are fetched beside them, and the capability level claimed follows
them (`BridgeClaim`); those that fail are tried again after 10 minutes, then less often (at most hourly).
A task that fails unexpectedly is an unhandled fault; no image model at all on
disk once every download was tried stops the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.background import ModelDownloads, backend_needs_model_files
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.worker.bridge_claim import BridgeClaim

FetchTask = asyncio.Task[dict[str, str]]
POST_PROCESSOR_RETRY_FIRST_S = 600.0
POST_PROCESSOR_RETRY_CAP_S = 3600.0


@dataclass
class FileFetch:
    """The downloads to run while serving, and what to do when they end."""

    models: ModelDownloads
    post_processors: PostProcessorDownloads | None  # None: the backend reads no post-processor files
    on_unhandled_fault: Callable[[str], None]
    on_no_model: Callable[[], None]  # every model download was tried and none is on disk
    retry_first_s: float = POST_PROCESSOR_RETRY_FIRST_S
    retry_cap_s: float = POST_PROCESSOR_RETRY_CAP_S
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep  # between attempts (a test's own clock)

    @classmethod
    def of(
        cls,
        data: BridgeData,
        models: list[str],
        downloader: Downloader,
        *,
        on_unhandled_fault: Callable[[str], None],
        on_no_model: Callable[[], None],
    ) -> FileFetch:
        """The downloads `data` asks for: the served models' files (for a backend that reads them), and the
        post-processors' (for a backend that runs them)."""
        fetch_files = backend_needs_model_files(data)
        # The fake backend passes post-processing through: even when it fetches checkpoints to behave like
        # the real one (`fake_backend.download_models`), it never loads a post-processor.
        runs_post_processors = data.inference_backend != "fake"
        return cls(
            ModelDownloads(data, models, downloader, fetch_files=fetch_files),
            PostProcessorDownloads(data, downloader) if runs_post_processors else None,
            on_unhandled_fault,
            on_no_model,
        )

    def start(self, offer: Callable[[list[str]], None], claim: BridgeClaim) -> list[FetchTask]:
        """Start fetching: `offer(ready)` as each image model lands; `claim` hears of each post-processor."""
        models = asyncio.create_task(self.models.run(offer), name="model downloads")
        models.add_done_callback(self._models_ended)
        if self.post_processors is None:
            return [models]
        extras = asyncio.create_task(self._post_processors_until_ready(claim), name="post-processor downloads")
        extras.add_done_callback(lambda task: self._failed(task, "post-processor downloads"))
        return [models, extras]

    def _failed(self, task: FetchTask, what: str) -> bool:
        if task.cancelled() or task.exception() is None:
            return False
        logger.opt(exception=task.exception()).error(f"The {what} failed unexpectedly")
        self.on_unhandled_fault(f"the {what} failed unexpectedly")
        return True

    def _models_ended(self, task: FetchTask) -> None:
        if task.cancelled():
            return
        self._failed(task, "model downloads")
        if not self.models.ready:
            self.on_no_model()

    async def _post_processors_until_ready(self, claim: BridgeClaim) -> dict[str, str]:
        """Fetch the post-processors; retry those that failed (a mirror or GitHub back after an outage) with a
        growing pause, so one outage does not cost them, or post-processing held for strip_background, until
        a restart. The level claimed is decided again after each round."""
        assert self.post_processors is not None
        delay = self.retry_first_s
        while True:
            failures = await self.post_processors.run(claim.files_changed)
            claim.refresh()
            if not failures:
                return failures
            logger.info(f"Trying {', '.join(failures)} again in {delay / 60:.0f} min")
            await self.pause(delay)
            delay = min(delay * 2, self.retry_cap_s)
