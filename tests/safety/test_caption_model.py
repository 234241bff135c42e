"""The caption model's real loading path, with the tiny random BLIP in place of BLIP-large.

The stand-in is saved where transformers' hub cache keeps BLIP-large (a snapshot of its hub name), so
the fetch at start-up finds it without the network and the captioner loads it by the hub name, exactly
as it loads the real model. Torch and transformers load in this test process (never in the worker's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from horde_worker_regen.safety.caption_options import CaptionOptions, caption_options
from horde_worker_regen.safety.weights import (
    CAPTION_MODEL_REPO,
    STAND_IN,
    SafetyWeightsUnavailable,
    caption_cache_dir,
    caption_model_source,
    ensure_caption_weights,
    safety_folder,
)
from tests.safety.caption_cache import cache_stand_in_caption_model

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: every fetch is refused


@pytest.fixture(autouse=True)
def _default_hf_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_CACHE", "HF_HOME", "TRANSFORMERS_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def test_the_real_model_is_the_default_and_the_stand_in_has_its_own_folder(tmp_path: Path) -> None:
    assert caption_model_source(tmp_path, "download") == CAPTION_MODEL_REPO == "Salesforce/blip-image-captioning-large"
    stand_in = Path(caption_model_source(tmp_path, STAND_IN))
    assert stand_in.parent == safety_folder(tmp_path, STAND_IN)
    assert caption_cache_dir(tmp_path) == tmp_path.resolve() / "hf_transformers" / "hub"


def test_the_hf_cache_follows_the_operators_settings(tmp_path: Path) -> None:
    assert caption_cache_dir(tmp_path, {"HF_HOME": "/hf"}) == Path("/hf/hub")
    assert caption_cache_dir(tmp_path, {"TRANSFORMERS_CACHE": "/tc"}) == Path("/tc")
    assert caption_cache_dir(tmp_path, {"HF_HUB_CACHE": "/hub", "HF_HOME": "/hf"}) == Path("/hub")


async def test_an_unreachable_hub_without_the_model_stops_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SafetyWeightsUnavailable, match=r"caption model .* could not be fetched from http://127"):
        await ensure_caption_weights(tmp_path, endpoint=UNREACHABLE)


async def test_the_cached_model_is_found_by_its_hub_name_and_captions(tmp_path: Path) -> None:
    from horde_worker_regen.safety.caption import BlipCaptioner, CaptionModelMissing

    picture = Image.new("RGB", (120, 80), (30, 90, 200))
    missing = BlipCaptioner(CAPTION_MODEL_REPO, caption_cache_dir(tmp_path), "cpu")
    with pytest.raises(CaptionModelMissing, match="not in"):
        missing.caption(picture, CaptionOptions())
    assert not missing.loaded

    snapshot = cache_stand_in_caption_model(tmp_path)
    assert await ensure_caption_weights(tmp_path, endpoint=UNREACHABLE) == snapshot  # found, nothing fetched
    captioner = BlipCaptioner(CAPTION_MODEL_REPO, caption_cache_dir(tmp_path), "cpu")
    first = captioner.caption(picture, caption_options({"num_beams": "2", "min_length": "5", "max_length": "8"}))
    assert captioner.loaded and isinstance(first, str)
    assert len(first.split()) <= 8  # max_length counts tokens, the start token included
    assert isinstance(captioner.caption(picture, CaptionOptions(num_beams=1, min_length=3, max_length=4)), str)
