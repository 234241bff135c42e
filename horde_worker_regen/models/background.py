"""Getting the served models onto disk while the worker already serves the ones it has.

At start-up the models whose files are verified are offered at once; the others are checked or
downloaded one after another in a background task, each offered as soon as it is ready.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.civitai import token_hosts
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.progress import StepProgress
from horde_worker_regen.models.store import ModelPlan, ModelStore, ensure_all, plans_for


def backend_needs_model_files(data: BridgeData) -> bool:
    """Whether the inference backend reads checkpoint files.

    The fake backend draws test patterns: fetching gigabytes of checkpoints for it would only cost
    a trial run its disk and its time, unless it is asked to behave like the real one.
    """
    return data.inference_backend != "fake" or data.fake_backend.download_models


def downloader_for(data: BridgeData, session: aiohttp.ClientSession) -> Downloader:
    """A downloader with the operator's CivitAI token (sent only to CivitAI hosts)."""
    token = data.civitai_api_token.get_secret_value() if data.civitai_api_token is not None else None
    return Downloader(session, civitai_token=token or None, token_hosts=token_hosts())


class ModelDownloads:
    """The served models split into ready and still to fetch, and the task that fetches them."""

    def __init__(self, data: BridgeData, models: list[str], downloader: Downloader, fetch_files: bool = True) -> None:
        self._order = list(models)
        self.store = ModelStore(data.cache_home, downloader)
        plans = plans_for(data, models) if fetch_files else []
        if not plans:
            self._ready = set(models)
            self._pending: list[ModelPlan] = []
            self.failures: dict[str, str] = {}
            return
        self._ready = {plan.name for plan in plans if self.store.is_ready(plan)}
        self._pending = [plan for plan in plans if plan.name not in self._ready]
        self.failures = {}

    @property
    def ready(self) -> list[str]:
        """The models that can be offered now, in the configured order."""
        return [name for name in self._order if name in self._ready]

    @property
    def pending(self) -> list[str]:
        """The models still to check or download."""
        return [plan.name for plan in self._pending]

    async def run(self, on_change: Callable[[list[str]], None]) -> dict[str, str]:
        """Fetch every pending model; `on_change(ready)` after each one lands. Returns the failures."""
        if self._pending:
            logger.info(f"{len(self._pending)} model(s) to verify or download: {', '.join(self.pending)}")
        progress = StepProgress("Models on disk", len(self._pending))

        def landed(name: str) -> None:
            self._ready.add(name)
            progress.advance(f"Model '{name}' is on disk and verified; offering it")
            on_change(self.ready)

        self.failures = await ensure_all(self.store, self._pending, landed)
        self._pending = []
        return self.failures
