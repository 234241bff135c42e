"""Post-processing jobs are not asked for while strip_background's model is wanted and not verified, and a
failed download is tried again later.

The worker's own `PostProcessorDownloads` fetches a stand-in u2net.onnx from the local mirror; the gate
wraps the pipeline's limits (here limits with no fault: the breaker is tested on its own) as the popper
reads them before each pop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from horde_worker_regen.inference.capabilities import capabilities_of
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.models.background import ModelDownloads
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from horde_worker_regen.worker.file_fetch import FileFetch
from horde_worker_regen.worker.post_processing_gate import PostProcessingGate
from tests.alchemy.test_strip_background_supply import _data
from tests.models.post_processor_mirror import post_processor_mirror
from tests.models.u2net_stand_in import u2net_stand_in


class NoFaults:
    """The pipeline's pop limits with nothing withdrawn."""

    def pop_flags_off(self) -> frozenset[str]:
        return frozenset({"allow_lora"})  # whatever the breaker refuses is passed on

    def reopens_in(self) -> float | None:
        return None


async def test_post_processing_waits_for_strip_backgrounds_model_then_is_asked_for(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        mirror.served["strip_background"].body = u2net_stand_in()
        files = PostProcessorDownloads(_data(tmp_path, mirror), Downloader(session))
        gate = PostProcessingGate(NoFaults(), files)
        assert gate.pop_flags_off() == {"allow_lora", "allow_post_processing"}
        assert await files.run(lambda ready: None) == {}
        assert gate.pop_flags_off() == {"allow_lora"}


async def test_a_model_that_could_not_be_fetched_keeps_post_processing_off(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        mirror.served["strip_background"].body = u2net_stand_in()
        files = PostProcessorDownloads(_data(tmp_path, mirror, sha256="0" * 64), Downloader(session))
        assert set(await files.run(lambda ready: None)) == {"strip_background"}
        assert "allow_post_processing" in PostProcessingGate(NoFaults(), files).pop_flags_off()


async def test_a_skipped_strip_background_is_not_waited_for(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        data = _data(tmp_path, mirror)
        data = data.model_copy(update={"models_to_skip": [*data.models_to_skip, "strip_background"]})
        files = PostProcessorDownloads(data, Downloader(session))
        assert PostProcessingGate(NoFaults(), files).pop_flags_off() == {"allow_lora"}


async def test_a_failed_download_is_tried_again_later_and_post_processing_then_reopens(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror, aiohttp.ClientSession() as session:
        served = mirror.served["strip_background"]
        served.body, served.status = u2net_stand_in(), 503  # GitHub in an outage
        data = _data(tmp_path, mirror)
        files = PostProcessorDownloads(data, Downloader(session))
        gate = PostProcessingGate(NoFaults(), files)
        pauses: list[float] = []

        async def outage_ends(seconds: float) -> None:  # the fetch's pause, on the test's own clock
            pauses.append(seconds)
            served.status = 200

        fetch = FileFetch(ModelDownloads(data, [], Downloader(session), fetch_files=False), files,
                          on_unhandled_fault=pytest.fail, on_no_model=lambda: None, pause=outage_ends)  # fmt: skip
        claim = BridgeClaim(capabilities_of("hordelib"), True, EventLog(), files=files, servable=lambda: None)
        tasks = fetch.start(lambda ready: None, claim)
        assert await tasks[-1] == {}
        await asyncio.gather(*tasks)
    assert pauses == [fetch.retry_first_s]
    assert "strip_background" in files.ready and gate.pop_flags_off() == {"allow_lora"}
