"""The caption form's model (BLIP), fetched at start in the main process; caption is offered only once it is there.

The safety child loads BLIP from transformers' cache only: a download there would hold up every image
check queued behind it. So when the alchemist offers caption (`alchemy_caption_enabled`, caption among
its `forms`), the files are fetched here, in the background while images and the other forms are
served, and caption joins the pops once they are on disk. A fetch that fails logs why and leaves
caption out of this run. The fake safety backend needs no model, and the stand-in test mode builds its
own in the safety child: with those, caption is offered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.roles import served_form_names
from horde_worker_regen.safety.weights import STAND_IN, SafetyWeightsUnavailable, ensure_caption_weights, weights_mode

CAPTION = "caption"
# Why caption is not offered yet, in the operator's words (the dashboard and /status.json show them).
CAPTION_MODEL_FETCHING = "its model (BLIP-large, about 1.9 GB) is being fetched; offered once it is on disk"
CAPTION_MODEL_FAILED = "its model could not be fetched at start"


def offers_caption(data: BridgeData) -> bool:
    """Whether the configuration has the alchemist offer caption."""
    return data.alchemist and data.alchemy_caption_enabled and CAPTION in served_form_names(data.forms)


class CaptionWeights:
    """Whether caption may be offered now: its model is on disk (or none is needed)."""

    def __init__(self, fetch: Callable[[], Awaitable[Path]] | None) -> None:
        self._fetch = fetch  # None: nothing to fetch
        self.ready = fetch is None
        self.problem: str | None = None  # why caption is left out, once a fetch failed
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_worker(cls, data: BridgeData) -> CaptionWeights | None:
        """What this worker needs for caption; None when it does not offer caption."""
        if not offers_caption(data):
            return None
        if data.safety_backend != "horde_safety" or weights_mode() == STAND_IN:
            return cls(None)
        return cls(lambda: ensure_caption_weights(data.cache_home))

    def start(self, on_ready: Callable[[], None]) -> None:
        """Fetch the model in the background; `on_ready()` once caption can be offered."""
        if self._fetch is None or self._task is not None:
            return
        self._task = asyncio.create_task(self._run(self._fetch, on_ready), name="caption model")

    async def _run(self, fetch: Callable[[], Awaitable[Path]], on_ready: Callable[[], None]) -> None:
        try:
            folder = await fetch()
        except SafetyWeightsUnavailable as error:
            self.problem = str(error)
            logger.warning(f"The alchemist serves no caption form this run: {error}")
            return
        self.ready = True
        logger.info(f"Caption model ready in {folder}; the alchemist offers caption from now on")
        on_ready()

    def unready_reason(self) -> str | None:
        """Why caption cannot be offered yet; None once it can."""
        if self.ready:
            return None
        return CAPTION_MODEL_FETCHING if self.problem is None else f"{CAPTION_MODEL_FAILED}: {self.problem}"

    async def settled(self) -> bool:
        """Wait for the fetch started to end; whether caption can be offered."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.ready

    async def close(self) -> None:
        """Stop waiting for a fetch under way (it goes on in its own thread and is resumed next start)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
