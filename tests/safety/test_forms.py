"""The analysis forms in the safety core and the in-process safety child, with the fake backend and doubles.

What the real models add (CLIP ranking, BLIP) runs in a real safety child in `test_horde_safety_forms.py`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.jobs.alchemy import ANALYSIS_FORMS, FormOutcome, FormRequest
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.processes.messages import ChildMessage, FormDone, RunForm
from horde_worker_regen.processes.safety_child import SafetyChild, SafetyChildConfig, safety_main
from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.caption_options import CaptionOptions
from horde_worker_regen.safety.core import SafetyCore
from horde_worker_regen.safety.fake import FakeSafetyBackend
from horde_worker_regen.safety.ranking import Ranked
from tests.safety.form_shapes import assert_form_error, assert_form_result

TIMEOUT = 30.0


def encoded(size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (180, 60, 30), kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, kind)
    return buffer.getvalue()


SOURCE = encoded()
CLEAN = SafetyScores(is_nsfw=False, is_csam=False)


def fake_core() -> SafetyCore:
    return SafetyCore(FakeSafetyBackend(FakeSafetySettings()))


@pytest.mark.parametrize("form", ANALYSIS_FORMS)
@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_each_form_answers_with_the_result_the_horde_expects(form: str, kind: str) -> None:
    outcome = fake_core().run_form(FormRequest(f"id-{form}", form, encoded(kind=kind)))
    assert_form_result(outcome, f"id-{form}", form)


def test_the_safety_child_answers_run_form_with_form_done() -> None:
    child = SafetyChild(fake_core(), 3)
    answer = child.handle(RunForm(3, FormRequest("f-1", "interrogation", SOURCE)))
    assert isinstance(answer, FormDone) and answer.incarnation == 3
    assert_form_result(answer.outcome, "f-1", "interrogation")


@pytest.mark.parametrize(
    ("source", "phrases"),
    [
        (b"", ("source image", "no image format")),
        (b"definitely not an image", ("source image", "no image format")),
        (SOURCE[: len(SOURCE) // 2], ("source image cannot be decoded",)),  # a cut download
    ],
)
def test_an_undecodable_source_is_an_error_and_the_core_goes_on(source: bytes, phrases: tuple[str, ...]) -> None:
    core = fake_core()
    for form in ANALYSIS_FORMS:
        assert_form_error(core.run_form(FormRequest("bad", form, source)), "bad", *phrases)
    assert_form_result(core.run_form(FormRequest("next", "caption", SOURCE)), "next", "caption")


@pytest.mark.parametrize("form", ["RealESRGAN_x4plus", "strip_background", "vectorize", "", "NSFW"])
def test_a_form_the_safety_child_does_not_run_is_an_error(form: str) -> None:
    assert_form_error(fake_core().run_form(FormRequest("x", form, SOURCE)), "x", repr(form), "does not run")


class ScoresOnly:
    """A safety backend with the image check alone (no analysis forms)."""

    name = "scores-only"

    def __init__(self, scores: SafetyScores = CLEAN) -> None:
        self.scores = scores
        self.prompts: list[str] = []

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        self.prompts.append(prompt)
        return self.scores


class Analyst(ScoresOnly):
    """A form backend whose check gives fixed scores and whose models may fail."""

    name = "analyst"

    def __init__(self, scores: SafetyScores = CLEAN, fails: str = "") -> None:
        super().__init__(scores)
        self.fails = fails
        self.options: list[CaptionOptions] = []

    def interrogate(self, picture: Image.Image) -> Mapping[str, list[Ranked]]:
        if self.fails == "interrogation":
            raise RuntimeError("CUDA out of memory")
        return FakeSafetyBackend(FakeSafetySettings()).interrogate(picture)

    def caption(self, picture: Image.Image, options: CaptionOptions) -> str:
        if self.fails == "caption":
            raise OSError("the caption model is not in the cache")
        self.options.append(options)
        return "a cat on a mat"


def test_a_backend_without_analysis_forms_answers_each_with_an_error() -> None:
    core = SafetyCore(ScoresOnly())
    for form in ANALYSIS_FORMS:
        assert_form_error(core.run_form(FormRequest("x", form, SOURCE)), "x", "scores-only", "runs no alchemy forms")


@pytest.mark.parametrize(
    ("scores", "nsfw"),
    [(SafetyScores(False, False), False), (SafetyScores(True, False), True), (SafetyScores(False, True), True)],
)
def test_the_nsfw_form_is_the_image_check_without_a_prompt(scores: SafetyScores, nsfw: bool) -> None:
    backend = Analyst(scores)
    result = assert_form_result(SafetyCore(backend).run_form(FormRequest("n", "nsfw", SOURCE)), "n", "nsfw")
    assert result == {"nsfw": nsfw} and backend.prompts == [""]


@pytest.mark.parametrize(("form", "reason"), [("interrogation", "RuntimeError"), ("caption", "OSError")])
def test_a_model_failure_is_an_error_and_the_core_goes_on(form: str, reason: str) -> None:
    core = SafetyCore(Analyst(fails=form))
    assert_form_error(core.run_form(FormRequest("f", form, SOURCE)), "f", reason)
    assert_form_result(core.run_form(FormRequest("g", "nsfw", SOURCE)), "g", "nsfw")


def test_the_caption_payload_reaches_the_model_as_options() -> None:
    backend = Analyst()
    payload = {"num_beams": "3", "min_length": "10", "top_p": "0.5", "repetition_penalty": "oops"}
    result = assert_form_result(
        SafetyCore(backend).run_form(FormRequest("c", "caption", SOURCE, payload)), "c", "caption"
    )
    assert result == {"caption": "a cat on a mat"}
    assert backend.options == [CaptionOptions(num_beams=3, min_length=10, max_length=40, top_p=0.5)]


@settings(max_examples=60, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(max_size=20)
        | st.sampled_from(["num_beams", "min_length", "max_length", "top_p", "repetition_penalty"]),
        st.text(max_size=30),
    )
)
def test_no_caption_payload_makes_the_form_fail(payload: dict[str, str]) -> None:
    outcome = fake_core().run_form(FormRequest("h", "caption", SOURCE, payload))
    assert_form_result(outcome, "h", "caption")


@pytest_asyncio.fixture
async def in_process_safety() -> AsyncIterator[tuple[InProcessChildren, ChildHandle, asyncio.Queue[ChildMessage]]]:
    messages: asyncio.Queue[ChildMessage] = asyncio.Queue()
    client = InProcessChildren(liveness_timeout=5.0, ping_interval=0.5)
    client.bind(lambda handle, message: messages.put_nowait(message), lambda handle, reason: None)
    config = SafetyChildConfig(ChildLogging(Path("logs"), 0, 0), "fake", FakeSafetySettings())
    handle = await client.start(ChildSpec("safety", safety_main, config))
    yield client, handle, messages
    await client.kill_all()


async def _outcome(messages: asyncio.Queue[ChildMessage]) -> FormOutcome:
    answer = await asyncio.wait_for(messages.get(), TIMEOUT)
    assert isinstance(answer, FormDone)
    return answer.outcome


async def test_the_in_process_safety_child_runs_every_form_and_survives_a_bad_source(
    in_process_safety: tuple[InProcessChildren, ChildHandle, asyncio.Queue[ChildMessage]],
) -> None:
    client, handle, messages = in_process_safety
    requests = [
        FormRequest("1", "nsfw", SOURCE),
        FormRequest("2", "caption", b"\x89PNG broken"),
        FormRequest("3", "interrogation", SOURCE),
        FormRequest("4", "caption", SOURCE, {"num_beams": "99"}),
    ]
    for request in requests:
        assert client.send(handle, RunForm(handle.incarnation, request))
    outcomes = [await _outcome(messages) for _ in requests]  # answered in order, one child thread
    assert_form_result(outcomes[0], "1", "nsfw")
    assert_form_error(outcomes[1], "2", "source image")
    assert_form_result(outcomes[2], "3", "interrogation")
    assert_form_result(outcomes[3], "4", "caption")
    assert handle in client.children
