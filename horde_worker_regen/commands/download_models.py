"""`download-models`: put every configured model on disk and verify it, without serving.

Models are resolved exactly as `run` resolves them; the files are fetched by the same code the worker
runs in the background (disk-space check, resume, sha256). Exit 0 when every model is ready, 1 with
the list of models that are not (and why) otherwise.
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
from horde_worker_regen.models.meta_instructions import MetaInstructionError
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
    async with aiohttp.ClientSession() as session:
        downloads = ModelDownloads(data, selection.models, downloader_for(data, session))
        logger.info(f"{len(downloads.ready)} of {len(selection.models)} model(s) already on disk and verified.")
        failures = await downloads.run(lambda ready: None)
    if failures:
        listing = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        logger.error(f"{len(failures)} model(s) are not ready: {listing}")
        return EXIT_INCOMPLETE
    logger.info(f"All {len(selection.models)} model(s) are on disk and verified.")
    return EXIT_OK


def download_models_command(args: argparse.Namespace) -> int:
    """The `download-models` subcommand; returns the exit status."""
    from horde_worker_regen.commands.resolve import resolve_config

    resolved = resolve_config(args)
    configure_logging(Path(args.logs_dir), args.verbosity, secrets=resolved.data.secrets())
    return asyncio.run(download_all(resolved.data))
