"""Fetching a job's LoRAs and TIs in the main process while earlier jobs run.

For each `payload["loras"]` / `payload["tis"]` entry: the local cache first; else resolve it through
the CivitAI API and download it (with the operator's token) into `<cache_home>/lora/` or `ti/`,
within `download_timeout`. A failure never fails the job: the entry is dropped from what the
inference child receives and the job reports `{"type": "lora"|"ti", "value": "download_failed"}`.
A source that failed (unreachable, 5xx, 429, timeout) is skipped for a growing while (`SourceBackoff`),
so later jobs do not each wait out the timeout; a reference CivitAI does not know or refuses (other
4xx, e.g. an early-access LoRA), a bad checksum or a full disk is not the source's fault: only that
reference fails. A LoRA's CivitAI trigger words are kept in the cache index with its
file and handed on with it (`GenerationSpec.lora_triggers`), so `inject_trigger` works on cache hits
too. The LoRA and TI folders share one `max_lora_cache_size` budget.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.models.backoff import SourceBackoff
from horde_worker_regen.models.civitai import civitai_api_url
from horde_worker_regen.models.civitai_api import NotFound, resolve
from horde_worker_regen.models.downloads import Downloader, DownloadFailed, describe_error
from horde_worker_regen.models.lora_cache import LoraCache, share_budget

PAYLOAD_KEYS = {"lora": "loras", "ti": "tis"}
_FAILURES = (DownloadFailed, aiohttp.ClientError, asyncio.TimeoutError)


def source_at_fault(error: BaseException) -> bool:
    """True when `error` says the source itself is failing (transport, timeout, 5xx, 429), not this reference."""
    if isinstance(error, DownloadFailed) and error.local:
        return False
    status = error.status if isinstance(error, DownloadFailed | aiohttp.ClientResponseError) else None
    if status is not None:
        return status >= 500 or status == 429
    return isinstance(error, _FAILURES)


@dataclass(frozen=True)
class ExtraRef:
    """One LoRA or TI a job asks for."""

    kind: str  # "lora" or "ti"
    name: str
    is_version: bool = False

    @property
    def cache_ref(self) -> str:
        """The key of this reference in the cache index (version ids and model ids never collide)."""
        return f"v:{self.name}" if self.is_version else self.name


def refs_of(payload: dict[str, Any]) -> list[ExtraRef]:
    """The LoRAs and TIs of a payload, duplicates removed."""
    refs: dict[tuple[str, str, bool], ExtraRef] = {}
    for kind, key in PAYLOAD_KEYS.items():
        for entry in payload.get(key) or ():
            if isinstance(entry, dict) and str(entry.get("name") or "").strip():
                ref = ExtraRef(kind, str(entry["name"]).strip(), bool(entry.get("is_version", False)))
                refs[(ref.kind, ref.cache_ref, ref.is_version)] = ref
    return list(refs.values())


class LoraFetcher:
    """Fetches LoRAs/TIs into the caches; one download per reference even when jobs ask at once."""

    def __init__(
        self,
        cache_home: Path,
        downloader: Downloader,
        *,
        max_cache_gb: int,
        timeout_s: float,
        backoff: SourceBackoff | None = None,
    ) -> None:
        limit = max_cache_gb * 1024**3
        self.caches = {kind: LoraCache(cache_home / kind, limit) for kind in PAYLOAD_KEYS}
        share_budget(*self.caches.values())  # LoRAs and TIs together stay under the one cap
        self._downloader = downloader
        self._timeout = timeout_s
        self.backoff = backoff or SourceBackoff()
        self._in_flight: dict[tuple[str, str], asyncio.Task[Path | None]] = {}

    async def fetch(self, spec: GenerationSpec) -> tuple[GenerationSpec, list[dict[str, Any]]]:
        """The spec with local files for every LoRA/TI fetched (failed ones removed), and gen_metadata."""
        refs = refs_of(spec.payload)
        if not refs:
            return spec, []
        paths = await asyncio.gather(*(self.path_for(ref) for ref in refs))
        found = {(ref.kind, ref.name): path for ref, path in zip(refs, paths, strict=True) if path is not None}
        metadata = [
            {"type": ref.kind, "value": "download_failed", "ref": ref.name[:255]}
            for ref, path in zip(refs, paths, strict=True)
            if path is None
        ]
        payload = dict(spec.payload)
        for kind, key in PAYLOAD_KEYS.items():
            if key in payload:
                payload[key] = [
                    entry
                    for entry in payload[key] or ()
                    if isinstance(entry, dict) and (kind, str(entry.get("name") or "").strip()) in found
                ]
        files = {kind: {name: str(path) for (k, name), path in found.items() if k == kind} for kind in PAYLOAD_KEYS}
        triggers = {
            name: words
            for name, path in files["lora"].items()
            if (words := self.caches["lora"].triggers(Path(path).name))
        }
        fetched = replace(spec, payload=payload, lora_files=files["lora"], ti_files=files["ti"], lora_triggers=triggers)
        return fetched, metadata

    async def path_for(self, ref: ExtraRef) -> Path | None:
        """The local file of `ref`, from the cache or fetched now; None when it cannot be had."""
        cached = self.caches[ref.kind].lookup(ref.cache_ref)
        if cached is not None:
            return cached
        key = (ref.kind, ref.cache_ref)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_bounded(ref))
            self._in_flight[key] = task
            task.add_done_callback(lambda _done: self._in_flight.pop(key, None))
        return await asyncio.shield(task)  # a cancelled job must not cancel another job's download

    async def _fetch_bounded(self, ref: ExtraRef) -> Path | None:
        source = urlsplit(civitai_api_url()).hostname or "civitai"
        blocked = self.backoff.blocked_for(source)
        if blocked > 0:
            logger.warning(f"Skipping {ref.kind} '{ref.name}': {source} failed recently (retry in {blocked:.0f} s)")
            return None
        try:
            path = await asyncio.wait_for(self._fetch(ref), self._timeout)
        except NotFound as error:
            logger.warning(f"Cannot fetch {ref.kind} '{ref.name}': {error}")
            return None
        except _FAILURES as error:
            reason = "timed out" if isinstance(error, asyncio.TimeoutError) else describe_error(error)
            if not source_at_fault(error):
                logger.warning(f"Cannot fetch {ref.kind} '{ref.name}': {reason}")
                return None
            delay = self.backoff.failed(source)
            logger.warning(f"Cannot fetch {ref.kind} '{ref.name}' ({reason}); skipping {source} for {delay:.0f} s")
            return None
        self.backoff.succeeded(source)
        return path

    async def _fetch(self, ref: ExtraRef) -> Path:
        cache = self.caches[ref.kind]
        headers = self._downloader.auth_headers(civitai_api_url())
        remote = await resolve(self._downloader.session, ref.kind, ref.name, ref.is_version, headers)
        target = cache.folder / remote.local_name
        if remote.local_name not in cache.files or not target.is_file():
            logger.info(f"Downloading {ref.kind} '{ref.name}' ({remote.file_name})")
            await self._downloader.fetch(remote.url, target, sha256=remote.sha256, size=remote.size)
        return cache.add(ref.cache_ref, remote.local_name, triggers=remote.triggers)
