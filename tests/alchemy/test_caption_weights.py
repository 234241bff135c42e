"""The caption model fetched at start in the main process: caption is offered only once it is on disk, and
a fetch that fails leaves caption out (the other forms go on). The tiny random BLIP stands in for
BLIP-large in the hub cache; the hub itself is unreachable, so nothing is ever downloaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.roles import served_form_names
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.safety.weights import HF_ENDPOINT_ENV_VAR, STAND_IN, WEIGHTS_ENV_VAR
from horde_worker_regen.scheduling.alchemy import served_forms, unserved_reason
from horde_worker_regen.worker.alchemy_wiring import form_supply
from horde_worker_regen.worker.caption_weights import CAPTION_MODEL_FETCHING, CaptionWeights
from tests.safety.caption_cache import cache_stand_in_caption_model

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: every fetch is refused
FORMS = ["caption", "nsfw", "interrogation"]


class NoPostProcessors:
    """The one thing `form_supply` asks of the pipeline: no post-processor loaders here."""

    def servable_post_processors(self) -> frozenset[str]:
        return frozenset()


@pytest.fixture(autouse=True)
def _unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_CACHE", "HF_HOME", "TRANSFORMERS_CACHE", "HF_HUB_OFFLINE", WEIGHTS_ENV_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(HF_ENDPOINT_ENV_VAR, UNREACHABLE)


def _data(tmp_path: Path, **settings: Any) -> BridgeData:
    defaults: dict[str, Any] = {
        "api_key": "k" * 22, "dreamer_name": "Caption Dreamer", "alchemist": True, "alchemist_name": "Caption Alch",
        "alchemy_caption_enabled": True, "forms": FORMS, "safety_backend": "horde_safety", "cache_home": tmp_path,
    }  # fmt: skip
    return BridgeData(**(defaults | settings))


def _served(data: BridgeData, caption: CaptionWeights | None) -> tuple[str, ...]:
    pipeline = cast(Pipeline, NoPostProcessors())
    supply = form_supply(data, pipeline, None, lambda: caption.unready_reason() if caption else None)
    return served_forms(served_form_names(data.forms), supply())


def _caption_reason(data: BridgeData, caption: CaptionWeights) -> str | None:
    """Why caption is not offered, as the dashboard shows it."""
    supply = form_supply(data, cast(Pipeline, NoPostProcessors()), None, caption.unready_reason)
    return unserved_reason("caption", supply())


def test_only_a_worker_offering_caption_with_the_real_model_fetches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CaptionWeights.for_worker(_data(tmp_path, alchemy_caption_enabled=False)) is None
    assert CaptionWeights.for_worker(_data(tmp_path, forms=["nsfw"])) is None
    assert CaptionWeights.for_worker(_data(tmp_path, alchemist=False)) is None
    fake = CaptionWeights.for_worker(_data(tmp_path, safety_backend="fake"))
    assert fake is not None and fake.ready  # the fake backend captions without a model
    real = CaptionWeights.for_worker(_data(tmp_path))
    assert real is not None and not real.ready
    monkeypatch.setenv(WEIGHTS_ENV_VAR, STAND_IN)  # the safety child builds its own random BLIP
    stand_in = CaptionWeights.for_worker(_data(tmp_path))
    assert stand_in is not None and stand_in.ready


async def test_caption_is_offered_once_the_model_is_on_disk(tmp_path: Path) -> None:
    data = _data(tmp_path)
    caption = CaptionWeights.for_worker(data)
    assert caption is not None
    assert _served(data, caption) == ("nsfw", "interrogation")  # not before the fetch ends
    assert _caption_reason(data, caption) == CAPTION_MODEL_FETCHING
    cache_stand_in_caption_model(tmp_path)
    woken = asyncio.Event()
    caption.start(woken.set)
    assert await caption.settled() and woken.is_set()  # found in the hub cache: nothing to download
    assert caption.problem is None and _caption_reason(data, caption) is None
    assert _served(data, caption) == ("caption", "nsfw", "interrogation")


async def test_a_fetch_that_fails_leaves_caption_out_and_says_why(tmp_path: Path) -> None:
    data = _data(tmp_path)
    caption = CaptionWeights.for_worker(data)
    assert caption is not None
    woken = asyncio.Event()
    caption.start(woken.set)
    assert not await caption.settled()
    assert caption.problem is not None and UNREACHABLE in caption.problem
    assert "leave caption out" in caption.problem
    assert not woken.is_set()
    assert _served(data, caption) == ("nsfw", "interrogation")  # the other forms go on
    reason = _caption_reason(data, caption)
    assert reason is not None and reason.startswith("its model could not be fetched at start: ")


async def test_a_fetch_under_way_holds_caption_back_and_never_the_shutdown(tmp_path: Path) -> None:
    data = _data(tmp_path)
    started, gate = asyncio.Event(), asyncio.Event()

    async def slow_fetch() -> Path:
        started.set()
        await gate.wait()  # the download goes on and on
        return tmp_path

    caption = CaptionWeights(slow_fetch)
    caption.start(lambda: None)
    await started.wait()
    assert _served(data, caption) == ("nsfw", "interrogation")
    await caption.close()  # the worker stops while the model downloads
    assert not caption.ready
