"""The pipeline of a serving worker and the capability level it claims, built from the configuration.

Everything the pipeline reaches out through is made here: the horde client's submitter and input
fetcher (guarded against private addresses unless allowed), the LoRA fetcher, the result spool and
the child supervisor. The `BridgeClaim` reads the children's post-processor loaders and the files the
worker fetches, so it is built beside the pipeline it asks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.identity import HordeUnreachable, IdentityError, describe_user, find_user
from horde_worker_regen.horde.pop import pop_flag_values
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.inference.capabilities import capabilities_of
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.models.background import downloader_for
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.popper import backoff_delay
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.spool import ResultSpool
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.pipeline.submitter import Submitter
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from horde_worker_regen.worker.file_fetch import FileFetch


@dataclass
class ServingPipeline:
    """The pipeline, the level claimed for it, and its spool (what a crashed run left is resumed from it)."""

    pipeline: Pipeline
    claim: BridgeClaim
    spool: ResultSpool

    @classmethod
    def build(
        cls,
        data: BridgeData,
        client: HordeClient,
        supervisor: ChildClient,
        stats: WorkerStats,
        *,
        fetch: FileFetch,
        loras: LoraFetcher,
        safety: ChildSpecs,
        events: EventLog,
        on_fatal: Callable[[str], None],
    ) -> ServingPipeline:
        """The pipeline with its services, and the claim that follows its children's loaders."""
        spool = ResultSpool(data.spool_folder)
        services = PipelineServices(
            supervisor=supervisor,
            registry=JobRegistry(),
            stats=stats,
            submitter=Submitter(client),
            fetcher=InputFetcher(client, guard=UrlGuard.for_horde(data.horde_url, data.allow_private_source_urls)),
            loras=loras,
            spool=spool,
            events=events,
        )
        pipeline = Pipeline(PipelineSettings.from_bridge_data(data), services, safety, on_fatal=on_fatal)
        claim = BridgeClaim(
            capabilities_of(data.inference_backend),
            pop_flag_values(data)["allow_post_processing"],
            events,
            files=fetch.post_processors,
            servable=pipeline.servable_post_processors,
        )
        claim.follow(lambda level: stats.claim_level(level.level, level.kudos_factor, level.reason))
        events.add_sink(claim.child_event)  # a child up or gone: its post-processor loaders may differ
        return cls(pipeline, claim, spool)


def lora_fetcher(data: BridgeData, session: aiohttp.ClientSession) -> LoraFetcher:
    """LoRAs (with allow_lora) and TIs (always offered by capable bridges) are fetched in this process."""
    return LoraFetcher(
        data.cache_home,
        downloader_for(data, session),
        max_cache_gb=data.max_lora_cache_size,
        timeout_s=float(data.download_timeout),
    )


async def check_identity_later(
    data: BridgeData, session: aiohttp.ClientSession, on_refused: Callable[[str], None]
) -> None:
    """The horde could not be asked at start: check the API key once it answers, with the pop's backoff.

    A refusal calls `on_refused` with what to change (the pop would be refused for the same reason)."""
    failures = 0
    rng = random.Random()  # noqa: S311 (jitter, not a secret)
    while True:
        try:
            user = await find_user(data, session)
        except HordeUnreachable:
            failures += 1
            await asyncio.sleep(backoff_delay(failures, data.horde_backoff_cap, rng))
            continue
        except IdentityError as error:
            on_refused(str(error))
            return
        logger.info(describe_user(user))
        return
