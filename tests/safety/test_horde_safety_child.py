"""The real horde_safety code in a real safety child, with random stand-in weights.

The weights are random, so the verdicts are arbitrary: what is proven is the plumbing. The child
builds CLIP ViT-L/14 and horde_safety's interrogator and NSFW checker, checks generated images,
and every verdict becomes the censoring the policy asks for (censor image and all).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.jobs.spec import CensorPolicy, ImagesToCheck
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec, ChildStartError
from horde_worker_regen.processes.messages import CheckImages, ChildMessage, SafetyChecked
from horde_worker_regen.processes.safety_child import SafetyChildConfig, safety_main
from horde_worker_regen.processes.supervisor import Supervisor
from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.censor import censor_image
from horde_worker_regen.safety.policy import censorship_for
from horde_worker_regen.safety.weights import STAND_IN, label_cache_name, safety_folder

# The first check encodes every horde_safety predicate with CLIP's text tower on the CPU.
CHECK_TIMEOUT_S = 600.0


def _webp(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "WEBP")
    return buffer.getvalue()


def _config(tmp_path: Path, cache_home: Path, weights: str) -> SafetyChildConfig:
    return SafetyChildConfig(
        ChildLogging(tmp_path / "logs", 0, 0),
        "horde_safety",
        FakeSafetySettings(),
        cache_home,
        on_gpu=True,
        weights=weights,  # type: ignore[arg-type]
    )


async def test_stand_in_weights_check_images_through_the_real_horde_safety(tmp_path: Path) -> None:
    messages: asyncio.Queue[ChildMessage] = asyncio.Queue()
    supervisor = Supervisor(liveness_timeout=CHECK_TIMEOUT_S)
    supervisor.bind(lambda handle, message: messages.put_nowait(message), lambda handle, reason: None)
    cache_home = tmp_path / "models"
    try:
        handle: ChildHandle = await supervisor.start(
            ChildSpec("safety", safety_main, _config(tmp_path, cache_home, STAND_IN))
        )
        images = (_webp((200, 120, 90), (64, 64)), _webp((20, 40, 60), (64, 64)))
        for censor_nsfw in (True, False):
            policy = CensorPolicy(censor_nsfw=censor_nsfw)
            request = CheckImages(
                handle.incarnation, ImagesToCheck(f"job-{censor_nsfw}", "a portrait ### blurry", 64, 64, images, policy)
            )
            assert supervisor.send(handle, request)
            answer = await asyncio.wait_for(messages.get(), CHECK_TIMEOUT_S)
            assert isinstance(answer, SafetyChecked) and answer.job_key == request.job_key
            assert len(answer.verdicts) == 2
            for verdict in answer.verdicts:
                assert not verdict.is_csam or verdict.is_nsfw
                expected = censorship_for(SafetyScores(verdict.is_nsfw, verdict.is_csam), policy)
                assert verdict.censorship == expected
                assert verdict.replacement == (censor_image(expected, 64, 64) if expected else None)
        await supervisor.stop(handle)
    finally:
        await supervisor.kill_all()
    # The stand-in's label tables sit in their own folder, never where the real ones belong.
    assert (safety_folder(cache_home, STAND_IN) / label_cache_name("flavors")).is_file()
    assert not safety_folder(cache_home, "download").exists()
    trace = "\n".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert "RANDOM STAND-IN weights" in trace and "horde_safety ready on cpu" in trace


async def test_without_its_files_the_real_safety_child_refuses_to_start(tmp_path: Path) -> None:
    supervisor = Supervisor(liveness_timeout=60.0)
    try:
        with pytest.raises(ChildStartError, match="safety model files missing"):
            await supervisor.start(ChildSpec("safety", safety_main, _config(tmp_path, tmp_path / "models", "download")))
    finally:
        await supervisor.kill_all()
