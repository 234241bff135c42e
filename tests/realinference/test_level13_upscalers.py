"""Real hordelib on the CPU: the level-13 post-processors in image jobs, on one inference child.

The child is the worker's own (`inference_main` behind a pipe, hordelib, the random-weight SD 1.5
checkpoint); the eight post-processors are random-weight models of their real architectures, loaded
by spandrel from where the worker keeps them. Pixels are noise: what is checked is each one's scale,
the horde's order rules, what a missing or wrong file does, and that a face restorer whose detector
finds no face leaves the image as it was generated.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from horde_worker_regen.jobs.alchemy import FormRequest
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_MODELS
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from horde_worker_regen.processes.messages import JobFailed
from tests.realinference.level13_child import JobRun, RealInferenceChild, real_inference_child
from tests.realinference.level13_models import ALL_NAMES

SIZE = 64
UPSCALERS = [model.name for model in LEVEL_13_MODELS if model.kind == "upscaler"]


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory, test_checkpoint: TestCheckpoint) -> Iterator[RealInferenceChild]:
    with real_inference_child(tmp_path_factory.mktemp("level13"), test_checkpoint) as started:
        yield started


@pytest.fixture(scope="module")
def plain(child: RealInferenceChild, test_checkpoint: TestCheckpoint) -> JobRun:
    """The job with no post-processing: the image as generated."""
    return child.run(test_checkpoint.name, [])


def _size(run: JobRun) -> tuple[int, int]:
    (image,) = run.images()
    return image.size


def test_the_child_says_it_can_run_all_eight_and_strip_background(child: RealInferenceChild) -> None:
    assert child.ready.backend == "hordelib"
    assert child.ready.post_processors == (*ALL_NAMES, "strip_background")


@pytest.mark.parametrize("name", UPSCALERS)
def test_each_upscaler_returns_the_image_at_its_scale(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint, name: str
) -> None:
    run = child.run(test_checkpoint.name, [name])
    scale = BY_NAME[name].scale
    assert _size(run) == (SIZE * scale, SIZE * scale)
    assert "post_processing" in run.stages


def test_a_non_square_image_keeps_its_shape(child: RealInferenceChild, test_checkpoint: TestCheckpoint) -> None:
    run = child.run(test_checkpoint.name, ["4xNomos2_hq_dat2"], width=128, height=64)
    assert _size(run) == (512, 256)


@pytest.mark.parametrize("name", ["GFPGANv1.3", "RestoreFormer"])
def test_a_face_restorer_that_finds_no_face_leaves_the_image_as_generated(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint, plain: JobRun, name: str
) -> None:
    """The random detector (RetinaFace, face helper and all real) sees no face in noise."""
    run = child.run(test_checkpoint.name, [name])
    (image,), (generated,) = run.images(), plain.images()
    assert image.size == (SIZE, SIZE)
    assert ImageChops.difference(image.convert("RGB"), generated.convert("RGB")).getbbox() is None


def test_only_the_first_upscaler_runs(child: RealInferenceChild, test_checkpoint: TestCheckpoint) -> None:
    assert _size(child.run(test_checkpoint.name, ["4xNomos8kSC", "2xModernSpanimationV1"])) == (256, 256)
    assert _size(child.run(test_checkpoint.name, ["2xModernSpanimationV1", "4xLSDIRplus"])) == (128, 128)


def _failure(run: JobRun) -> tuple[str, str, str]:
    assert isinstance(run.answer, JobFailed), "the job should have failed"
    failure = run.answer.failure
    return failure.kind, failure.subject, failure.reason


def test_a_missing_or_wrong_file_fails_the_feature_and_names_the_file(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint, tmp_path: Path
) -> None:
    cache_home = child.cache_home
    span = BY_NAME["2xModernSpanimationV1"].file.path_under(cache_home)
    kept = shutil.copyfile(span, tmp_path / span.name)
    span.unlink()
    kind, subject, reason = _failure(child.run(test_checkpoint.name, ["2xModernSpanimationV1"]))
    assert (kind, subject) == ("unsupported_feature", "post_processing") and str(span) in reason
    shutil.copyfile(BY_NAME["4xNomos8kSC"].file.path_under(cache_home), span)  # an ESRGAN 4x under SPAN's name
    kind, subject, reason = _failure(child.run(test_checkpoint.name, ["2xModernSpanimationV1"]))
    assert (kind, subject) == ("failing_feature", "post_processing") and str(span) in reason
    assert "ESRGAN x4" in reason and "not SPAN x2" in reason
    shutil.copyfile(kept, span)  # the right file again: it is loaded afresh
    assert _size(child.run(test_checkpoint.name, ["2xModernSpanimationV1"])) == (128, 128)


# --- The same post-processors as alchemy forms: one source image in, one WebP out --------------------------


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 60, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["4xNomos8kSC", "2xModernSpanimationV1"])
def test_an_upscaler_form_returns_a_webp_at_its_scale(child: RealInferenceChild, name: str) -> None:
    outcome = child.form(FormRequest(f"form-{name}", name, _png(48, 32)))
    assert outcome.ok and outcome.image is not None, outcome.error
    image = Image.open(io.BytesIO(outcome.image))
    scale = BY_NAME[name].scale
    assert (image.format, image.size) == ("WEBP", (48 * scale, 32 * scale))


def test_a_form_whose_post_processor_cannot_run_fails_alone(child: RealInferenceChild) -> None:
    """hordelib's own RealESRGAN_x4plus has no file here (its reference is empty): the form fails, the child
    answers the next one."""
    failed = child.form(FormRequest("form-old", "RealESRGAN_x4plus", _png(32, 32)))
    assert not failed.ok and failed.error
    assert child.form(FormRequest("form-next", "2xModernSpanimationV1", _png(32, 32))).ok
