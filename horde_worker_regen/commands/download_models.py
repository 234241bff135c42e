"""`download-models`: put every configured model on disk and verify it, without serving.

Models are resolved exactly as `run` resolves them; the files are fetched by the same code the worker
runs in the background (disk-space check, resume, sha256). The wanted level-13 post-processors
(`allow_post_processing`, less `models_to_skip`) follow the image models, from their public URLs or
the `post_processor_sources` mirrors. Exit 0 when every model and post-processor is ready, 1 with the
list of those that are not (and why) otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import aiohttp
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.logs.setup import configure_logging
from horde_worker_regen.models.background import ModelDownloads, downloader_for
from horde_worker_regen.models.custom import write_custom_models
from horde_worker_regen.models.disk_need import disk_need, log_disk_need
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.meta_instructions import MetaInstructionError
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.models.reference_cache import ReferenceUnavailable
from horde_worker_regen.models.selection import CustomModelClash, select_models

EXIT_OK = 0
EXIT_INCOMPLETE = 1


async def download_all(data: BridgeData) -> int:
    """Resolve, verify and download the configured models; returns the exit status."""
    try:
        selection = await select_models(data)
    except (ReferenceUnavailable, MetaInstructionError, CustomModelClash) as error:
        logger.error(f"Cannot resolve the models: {error}")
        return EXIT_INCOMPLETE
    for name in selection.unknown:
        logger.warning(f"Model '{name}' is not in the model reference; skipped.")
    if not selection.models:
        logger.error("No model to download: check models_to_load and models_to_skip (try check-config).")
        return EXIT_INCOMPLETE
    write_custom_models(data)
    log_disk_need(disk_need(data, selection.models))  # every file is fetched here, whatever the backend
    async with aiohttp.ClientSession() as session:
        downloader = downloader_for(data, session)
        downloads = ModelDownloads(data, selection.models, downloader)
        logger.info(f"{len(downloads.ready)} of {len(selection.models)} model(s) already on disk and verified.")
        failures = await downloads.run(lambda ready: None)
        post_failures = await download_post_processors(data, downloader)
    if failures:
        listing = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        logger.error(f"{len(failures)} model(s) are not ready: {listing}")
    if post_failures:
        listing = "; ".join(f"{name}: {reason}" for name, reason in post_failures.items())
        logger.error(f"{len(post_failures)} post-processor(s) are not ready: {listing}")
    if failures or post_failures:
        return EXIT_INCOMPLETE
    logger.info(f"All {len(selection.models)} model(s) are on disk and verified.")
    return EXIT_OK


async def download_post_processors(data: BridgeData, downloader: Downloader) -> dict[str, str]:
    """Verify or download the wanted post-processors; returns why each that is not ready is not."""
    post = PostProcessorDownloads(data, downloader)
    if not post.wanted:
        logger.info("No post-processor to download (allow_post_processing is off, or models_to_skip names all).")
        return {}
    logger.info(f"{len(post.ready)} of {len(post.wanted)} post-processor(s) already on disk and verified.")
    failures = await post.run(lambda ready: None)
    if not failures:
        logger.info(f"All {len(post.wanted)} post-processor(s) are on disk and verified.")
    return failures


def download_models_command(args: argparse.Namespace) -> int:
    """The `download-models` subcommand; returns the exit status."""
    from horde_worker_regen.commands.resolve import resolve_config

    resolved = resolve_config(args)
    configure_logging(Path(args.logs_dir), args.verbosity, secrets=resolved.data.secrets())
    return asyncio.run(download_all(resolved.data))
