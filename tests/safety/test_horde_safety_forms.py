"""The analysis forms in a real safety child: horde_safety's CLIP and NSFW checker, and BLIP, with random
stand-in weights (so the answers are arbitrary; their shapes, and the child going on, are what is proven)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from PIL import Image

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.messages import ChildMessage, FormDone, RunForm
from horde_worker_regen.processes.safety_child import SafetyChildConfig, safety_main
from horde_worker_regen.processes.supervisor import Supervisor
from horde_worker_regen.safety.horde_safety_backend import TRENDING_SITES
from horde_worker_regen.safety.weights import STAND_IN, caption_model_source, safety_folder
from tests.safety.form_shapes import assert_form_error, assert_form_result

# The first form of each kind builds what it needs on a shared CPU (the NSFW predicates, the label matrices,
# the stand-in BLIP); a hung child fails the test, nothing waits this long otherwise.
FORM_TIMEOUT_S = 300.0


def _jpeg(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


Child = tuple[Supervisor, ChildHandle, "asyncio.Queue[ChildMessage]"]


@pytest_asyncio.fixture
async def safety_child(tmp_path: Path) -> AsyncIterator[Child]:
    messages: asyncio.Queue[ChildMessage] = asyncio.Queue()
    supervisor = Supervisor(liveness_timeout=FORM_TIMEOUT_S)
    supervisor.bind(lambda handle, message: messages.put_nowait(message), lambda handle, reason: None)
    config = SafetyChildConfig(
        ChildLogging(tmp_path / "logs", 0, 0),
        "horde_safety",
        FakeSafetySettings(),
        tmp_path / "models",
        weights=STAND_IN,
    )
    try:
        handle = await supervisor.start(ChildSpec("safety", safety_main, config))
        yield supervisor, handle, messages
        await supervisor.stop(handle)
    finally:
        await supervisor.kill_all()


async def _run(child: Child, request: FormRequest) -> FormOutcome:
    supervisor, handle, messages = child
    assert supervisor.send(handle, RunForm(handle.incarnation, request))
    answer = await asyncio.wait_for(messages.get(), FORM_TIMEOUT_S)
    assert isinstance(answer, FormDone)
    return answer.outcome


async def test_every_analysis_form_in_the_real_safety_child_which_survives_bad_forms(
    safety_child: Child, tmp_path: Path
) -> None:
    source = _jpeg((320, 200), (210, 140, 90))
    nsfw = await _run(safety_child, FormRequest("f-nsfw", "nsfw", source))
    assert_form_result(nsfw, "f-nsfw", "nsfw")

    outcome = await _run(safety_child, FormRequest("f-int", "interrogation", source))
    details = assert_form_result(outcome, "f-int", "interrogation")["interrogation"]
    # An artist is named once, a site by its bare name, as the horde's categories mean them.
    assert not any(item["text"].startswith(("by ", "inspired by ")) for item in details["artists"])
    assert {item["text"] for item in details["sites"]} <= set(TRENDING_SITES)

    payload = {"num_beams": "2", "min_length": "4", "max_length": "not a number", "top_p": "7"}
    assert_form_result(await _run(safety_child, FormRequest("f-cap", "caption", source, payload)), "f-cap", "caption")
    stand_in_blip = Path(caption_model_source(tmp_path / "models", STAND_IN))
    assert (stand_in_blip / "config.json").is_file() and (stand_in_blip / "model.safetensors").is_file()
    assert stand_in_blip.is_relative_to(safety_folder(tmp_path / "models", STAND_IN))
    assert not safety_folder(tmp_path / "models", "download").exists()  # nothing where the real files belong

    # A bad source or a form it does not run is an error, and the child answers the next form.
    assert_form_error(await _run(safety_child, FormRequest("bad", "caption", b"GIF89a broken")), "bad", "source image")
    assert_form_error(await _run(safety_child, FormRequest("pp", "GFPGAN", b"")), "pp", "'GFPGAN'", "does not run")
    small = _jpeg((64, 64), (10, 20, 30))
    outcome = await _run(safety_child, FormRequest("next", "interrogation", small, {"max_length": "6"}))
    assert_form_result(outcome, "next", "interrogation")
