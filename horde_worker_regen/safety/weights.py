"""The files the horde_safety backend needs, fetched once at first start; and the stand-in mode for tests.

horde_safety checks images with CLIP ViT-L/14 (OpenAI weights, through open_clip) and builds
clip-interrogator label tables whose embeddings come precomputed. Both are downloaded here, in the
main process and before any child starts, so that the operator sees progress and, when the
download is impossible, one clear error that stops start-up: a worker that cannot check images
must not serve. Nothing here imports torch.

`REGEN_SAFETY_WEIGHTS=random-stand-in` (tests and the demo only) replaces the weights with random
ones built in the safety child: the real horde_safety code runs, but its verdicts mean nothing,
so that mode is announced loudly and refused against a public horde.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import aiohttp
from loguru import logger

WeightsMode = Literal["download", "random-stand-in"]
WEIGHTS_ENV_VAR = "REGEN_SAFETY_WEIGHTS"
STAND_IN: Final = "random-stand-in"
HF_ENDPOINT_ENV_VAR = "HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
CLIP_MODEL = "ViT-L-14/openai"
# open_clip's file for `pretrained="openai"` (its hf_hub entry `timm/vit_large_patch14_clip_224.openai/`).
CLIP_WEIGHTS_REPO = "timm/vit_large_patch14_clip_224.openai"
CLIP_WEIGHTS_FILE = "open_clip_pytorch_model.bin"
CLIP_WEIGHTS_NAME = "ViT-L-14_openai_weights.bin"
# clip-interrogator's precomputed label embeddings (its CACHE_URL_BASE).
LABEL_CACHE_REPO = "pharma/ci-preprocess"
LABEL_TABLES = ("artists", "flavors", "mediums", "movements", "trendings", "negative")
# The caption form's model (BLIP-large, ~1.9 GB), kept in transformers' hub cache where horde_safety puts it;
# only what loading it needs (configs, tokenizer, safetensors weights) is fetched.
CAPTION_MODEL_REPO = "Salesforce/blip-image-captioning-large"
CAPTION_MODEL_FILES = ("*.json", "*.txt", "*.safetensors")
STAND_IN_CAPTION_FOLDER = "blip-stand-in"
PROGRESS_EVERY_S = 5.0
CHUNK_BYTES = 1 << 20
T = TypeVar("T")


class SafetyWeightsUnavailable(RuntimeError):
    """The safety model's files are missing and could not be fetched; the message says what to do."""


@dataclass(frozen=True)
class WeightsFile:
    """One file the safety model needs: where it comes from and where it lives here."""

    url: str
    path: Path


def weights_mode(environ: Mapping[str, str] = os.environ) -> WeightsMode:
    """`download` (the real weights) unless the stand-in test mode is asked for; anything else is an error."""
    value = environ.get(WEIGHTS_ENV_VAR, "").strip()
    if not value or value == "download":
        return "download"
    if value == STAND_IN:
        return STAND_IN
    raise SafetyWeightsUnavailable(
        f"{WEIGHTS_ENV_VAR}={value!r} is not understood; leave it unset "
        f"(real weights) or set it to {STAND_IN!r} (tests and the demo only)"
    )


def safety_folder(cache_home: Path, mode: WeightsMode) -> Path:
    """Where horde_safety keeps its files: `<cache_home>/clip_blip`, or a separate tree for the stand-in,
    so random label tables never sit where the real ones belong."""
    root = cache_home.resolve()
    return (root / "safety-stand-in" if mode == STAND_IN else root) / "clip_blip"


def cache_root(cache_home: Path, mode: WeightsMode) -> Path:
    """The AIWORKER_CACHE_HOME the safety child gives horde_safety (it appends `clip_blip`)."""
    return safety_folder(cache_home, mode).parent


def caption_cache_dir(cache_home: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """transformers' hub cache as horde_safety sets it up (`<cache_home>/hf_transformers/hub`), unless the
    operator points the Hugging Face cache elsewhere, where horde_safety leaves it too."""
    if hub_cache := environ.get("HF_HUB_CACHE"):
        return Path(hub_cache)
    if hf_home := environ.get("HF_HOME"):
        return Path(hf_home) / "hub"
    if transformers_cache := environ.get("TRANSFORMERS_CACHE"):
        return Path(transformers_cache)
    return cache_root(cache_home, "download") / "hf_transformers" / "hub"


def caption_model_source(cache_home: Path, mode: WeightsMode) -> str:
    """What the caption model is loaded from: BLIP-large's hub name (found in `caption_cache_dir`), or the
    folder of the small random stand-in the safety child builds in test mode."""
    if mode == STAND_IN:
        return str(safety_folder(cache_home, STAND_IN) / STAND_IN_CAPTION_FOLDER)
    return CAPTION_MODEL_REPO


def label_cache_name(table: str) -> str:
    """clip-interrogator's file name for one label table of the CLIP model."""
    return f"{CLIP_MODEL.replace('/', '_')}_{table}.safetensors"


def required_files(folder: Path, endpoint: str | None = None) -> tuple[WeightsFile, ...]:
    """The CLIP weights and every label table, with their download URLs."""
    base = (endpoint or os.environ.get(HF_ENDPOINT_ENV_VAR) or DEFAULT_HF_ENDPOINT).rstrip("/")
    files = [WeightsFile(f"{base}/{CLIP_WEIGHTS_REPO}/resolve/main/{CLIP_WEIGHTS_FILE}", folder / CLIP_WEIGHTS_NAME)]
    files += [
        WeightsFile(
            f"{base}/{LABEL_CACHE_REPO}/resolve/main/{label_cache_name(table)}", folder / label_cache_name(table)
        )
        for table in LABEL_TABLES
    ]
    return tuple(files)


def missing_files(folder: Path, endpoint: str | None = None) -> list[WeightsFile]:
    """The required files not yet on disk."""
    return [file for file in required_files(folder, endpoint) if not file.path.is_file()]


class _Progress:
    """Logs one file's download every few seconds and at the end."""

    def __init__(self, name: str, total: int | None, clock: Callable[[], float]) -> None:
        self.name, self.total, self.clock = name, total, clock
        self.started = self.last = clock()
        self.done = 0

    def add(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            logger.info(f"Downloading {self.name}: {self.describe()}")

    def describe(self) -> str:
        mb = 1024 * 1024
        elapsed = max(self.clock() - self.started, 1e-9)
        percent = f"{100 * self.done / self.total:.0f}% of {self.total / mb:.1f} MB, " if self.total else ""
        return f"{percent}{self.done / mb:.1f} MB at {self.done / mb / elapsed:.1f} MB/s"


async def _download(session: aiohttp.ClientSession, file: WeightsFile, clock: Callable[[], float]) -> None:
    """Fetch one file to `<name>.part`, then move it into place."""
    part = file.path.with_name(file.path.name + ".part")
    try:
        async with session.get(file.url) as response:
            if response.status != 200:
                raise SafetyWeightsUnavailable(f"HTTP {response.status} {response.reason} for {file.url}")
            progress = _Progress(file.path.name, response.content_length, clock)
            with part.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    out.write(chunk)
                    progress.add(len(chunk))
        if progress.total is not None and progress.done != progress.total:
            raise SafetyWeightsUnavailable(f"{file.url} ended after {progress.done} of {progress.total} bytes")
    except BaseException:
        part.unlink(missing_ok=True)  # a cut download is started again next time, never taken as whole
        raise
    part.replace(file.path)
    logger.info(f"Downloaded {file.path.name}: {progress.describe()}")


def _unavailable(file: WeightsFile, folder: Path, reason: str) -> SafetyWeightsUnavailable:
    return SafetyWeightsUnavailable(
        f"the safety model file {file.path.name} could not be downloaded from {file.url} ({reason}). "
        "The worker checks every image for NSFW and CSAM with it and does not serve without it. "
        f"Let this machine reach {file.url.split('/', 3)[2]} once (or point {HF_ENDPOINT_ENV_VAR} at a mirror), "
        f"or copy the files into {folder}: {', '.join(f.path.name for f in required_files(folder))}."
    )


async def ensure_safety_weights(
    cache_home: Path, *, endpoint: str | None = None, clock: Callable[[], float] = time.monotonic
) -> Path:
    """Download whatever the safety model still lacks; returns its folder. SafetyWeightsUnavailable if impossible."""
    folder = safety_folder(cache_home, "download")
    missing = missing_files(folder, endpoint)
    if not missing:
        logger.debug(f"Safety model files present in {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    logger.info(f"Downloading {len(missing)} safety model file(s) to {folder} (once; about 1.8 GB in all)")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for file in missing:
            try:
                await _download(session, file, clock)
            except SafetyWeightsUnavailable as error:
                raise _unavailable(file, folder, str(error)) from None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                raise _unavailable(file, folder, f"{type(error).__name__}: {error}".rstrip(": ")) from None
    return folder


async def prepare_safety_backend(backend: str, cache_home: Path, *, public_horde: bool) -> None:
    """Make the configured safety backend ready to start, or raise SafetyWeightsUnavailable saying why not."""
    if backend != "horde_safety":
        return
    if weights_mode() == STAND_IN:
        if public_horde:
            raise SafetyWeightsUnavailable(
                f"{WEIGHTS_ENV_VAR}={STAND_IN} gives the safety check random weights whose verdicts mean nothing; "
                f"it only runs against a local horde. Unset {WEIGHTS_ENV_VAR}."
            )
        logger.warning(
            f"{WEIGHTS_ENV_VAR}={STAND_IN}: the safety check runs with RANDOM weights (tests and the "
            "demo only); its NSFW/CSAM verdicts mean nothing"
        )
        return
    await ensure_safety_weights(cache_home)


async def _in_daemon_thread(call: Callable[[], T]) -> T:
    """`call()` on a daemon thread: a download under way never holds up the worker's exit (cancelling
    the wait leaves the thread to finish or die with the process; the hub's cache resumes it next time)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def target() -> None:
        try:
            result = call()
        except BaseException as error:  # handed to the waiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(fail, error)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(succeed, result)

    threading.Thread(target=target, name="caption model download", daemon=True).start()
    return await future


async def ensure_caption_weights(cache_home: Path, *, endpoint: str | None = None) -> Path:
    """Fetch BLIP-large into `caption_cache_dir` unless it is there (once, ~1.9 GB); its snapshot folder.

    Called at start-up in the main process when the caption form is offered: the safety child only ever
    loads it from the cache, since a download there would hold up every image check behind it."""
    from huggingface_hub import snapshot_download

    cache_dir = caption_cache_dir(cache_home)
    base = (endpoint or os.environ.get(HF_ENDPOINT_ENV_VAR) or DEFAULT_HF_ENDPOINT).rstrip("/")
    logger.info(f"Making sure the caption model {CAPTION_MODEL_REPO} is in {cache_dir} (once; about 1.9 GB)")
    try:
        folder = await _in_daemon_thread(
            lambda: snapshot_download(
                CAPTION_MODEL_REPO,
                cache_dir=cache_dir,
                allow_patterns=list(CAPTION_MODEL_FILES),
                endpoint=base,
            )
        )
    except Exception as error:  # huggingface_hub raises its own errors, requests', and OSError
        raise SafetyWeightsUnavailable(
            f"the caption model {CAPTION_MODEL_REPO} could not be fetched from {base} "
            f"({type(error).__name__}: {error}). The caption form needs it; let this machine reach "
            f"{base.split('/', 3)[2]} once (or point {HF_ENDPOINT_ENV_VAR} at a mirror), or leave caption out "
            "of the alchemist's forms."
        ) from None
    return Path(str(folder))
