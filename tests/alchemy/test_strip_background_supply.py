"""The alchemist offers strip_background only once rembg's u2net.onnx is on disk and verified.

The worker's own `PostProcessorDownloads` fetches a stand-in model from the local post-processor mirror;
`form_supply` (what the alchemist asks before every pop) reads its ready set and the inference
processes' loaders (here a double whose children can run rembg). A download refused for its sha256
leaves strip_background out, with the reason the dashboard shows, and nothing where rembg reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.post_processor_files import LEVEL_13_POST_PROCESSORS, U2NET
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.scheduling.alchemy import BACKGROUND_REMOVAL_NOT_READY, served_forms, unserved_reason
from horde_worker_regen.worker.alchemy_wiring import form_supply
from tests.models.post_processor_mirror import Mirror, install_post_processing_references, post_processor_mirror
from tests.models.u2net_stand_in import u2net_stand_in

FORMS = ("RealESRGAN_x4plus", "strip_background")


class RembgLoads:
    """The one thing `form_supply` asks of the pipeline: every inference process can run rembg."""

    def servable_post_processors(self) -> frozenset[str]:
        return frozenset({"strip_background"})


def _data(cache_home: Path, mirror: Mirror, **source: Any) -> BridgeData:
    install_post_processing_references(cache_home)
    sources = {"strip_background": {"url": mirror.url("strip_background"), **source}}
    return BridgeData(
        api_key="k" * 22, dreamer_name="Strip Dreamer", alchemist=True, alchemist_name="Strip Alch",
        forms=list(FORMS), cache_home=cache_home, models_to_skip=sorted(LEVEL_13_POST_PROCESSORS),
        post_processor_sources=sources,
    )  # fmt: skip


async def test_strip_background_is_offered_only_once_its_model_is_downloaded_and_verified(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        mirror.served["strip_background"].body = u2net_stand_in()
        data = _data(tmp_path, mirror)
        files = PostProcessorDownloads(data, Downloader(session))
        supply = form_supply(data, cast(Pipeline, RembgLoads()), files)
        assert files.wanted == ("strip_background",)
        assert served_forms(FORMS, supply()) == ("RealESRGAN_x4plus",)
        assert unserved_reason("strip_background", supply()) == BACKGROUND_REMOVAL_NOT_READY
        assert await files.run(lambda ready: None) == {}
        assert served_forms(FORMS, supply()) == FORMS
    assert U2NET.path_under(tmp_path).read_bytes() == u2net_stand_in()


async def test_a_model_refused_for_its_sha256_is_never_offered_nor_left_where_rembg_reads(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        mirror.served["strip_background"].body = u2net_stand_in()
        data = _data(tmp_path, mirror, sha256="0" * 64)  # the operator's mirror entry names other bytes
        files = PostProcessorDownloads(data, Downloader(session))
        failures = await files.run(lambda ready: None)
        supply = form_supply(data, cast(Pipeline, RembgLoads()), files)
        assert set(failures) == {"strip_background"} and "sha256 is" in failures["strip_background"]
        assert served_forms(FORMS, supply()) == ("RealESRGAN_x4plus",)
    folder = U2NET.path_under(tmp_path).parent
    assert not folder.exists() or list(folder.iterdir()) == []  # neither u2net.onnx nor a .partial
