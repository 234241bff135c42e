"""The image popper of a running worker, built from the configuration and the slots planned."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.plan import SlotPlan, served_by_some_slot
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import build_pop_request
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.pipeline.burst import BurstMember
from horde_worker_regen.pipeline.idle_watch import IdleWatch
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from horde_worker_regen.worker.file_fetch import FileFetch
from horde_worker_regen.worker.post_processing_gate import PostProcessingGate


def build_popper(
    data: BridgeData,
    plans: list[SlotPlan],
    parts: tuple[HordeClient, Pipeline, WorkerStats, BridgeClaim],
    models: list[str],
    *,
    burst: BurstMember | None,
    on_stop: Callable[[str, int], None],
    post_processors: PostProcessorDownloads | None = None,
) -> Popper:
    """The popper offering `models`, paced by the configuration, limited by the pipeline's fault breaker and
    reporting the bridge agent of the level claimed (from its next pop on, when the level changes); with
    `post_processors` (a backend that runs them), post-processing waits for strip_background's model."""
    client, pipeline, stats, claim = parts
    request = build_pop_request(data, served_by_some_slot(models, plans), claim.current.agent)
    settings = PopperSettings(
        len(plans),
        data.queue_size,
        idle_interval=data.idle_pop_interval,
        backoff_cap=data.horde_backoff_cap,
    )
    popper = Popper(
        client,
        request,
        pipeline,
        stats,
        settings,
        on_stop=on_stop,
        offer=pipeline.offer,
        idle=IdleWatch(data.minutes_allowed_without_jobs, data.max_power),
        burst=burst,
        on_out_of_jobs=pipeline.forms.capacity_changed,  # a post-processor form may take an idle slot now
    )
    popper.limit_with(pipeline if post_processors is None else PostProcessingGate(pipeline, post_processors))
    claim.follow(lambda level: popper.set_bridge_agent(level.agent))
    return popper


def start_image_popper(
    data: BridgeData,
    plans: list[SlotPlan],
    parts: tuple[HordeClient, Pipeline, WorkerStats, BridgeClaim],
    fetch: FileFetch,
    *,
    burst: BurstMember | None,
    on_stop: Callable[[str, int], None],
) -> tuple[Popper, asyncio.Task[None]]:
    """The image popper offering the models on disk, and its task (one that ends at once for an
    alchemist-only worker)."""
    downloads = fetch.models
    popper = build_popper(
        data, plans, parts, downloads.ready, burst=burst, on_stop=on_stop, post_processors=fetch.post_processors
    )
    if data.dreamer:
        logger.info(
            f"Serving {len(downloads.ready)} model(s) as '{data.dreamer_name}' ({popper.bridge_agent})"
            + (f"; {len(downloads.pending)} more once on disk" if downloads.pending else "")
        )
    return popper, asyncio.create_task(popper.run() if data.dreamer else asyncio.sleep(0), name="popper")
