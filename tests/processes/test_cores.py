"""The inference and safety cores, driven in-process with no child process at all."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from horde_worker_regen.config.sections import FakeBackendSettings, FakeSafetySettings
from horde_worker_regen.inference.backend import BackendCapabilities
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.inference.fake import FakeInferenceBackend
from horde_worker_regen.jobs.alchemy import FormRequest
from horde_worker_regen.jobs.spec import CensorPolicy, GenerationSpec, ImagesToCheck, JobInputs
from horde_worker_regen.processes.inference_child import InferenceChild
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildFailed,
    FormDone,
    JobDone,
    JobFailed,
    RunForm,
    RunJob,
    SafetyChecked,
)
from horde_worker_regen.processes.safety_child import SafetyChild
from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.censor import censor_image
from horde_worker_regen.safety.core import SafetyCore
from horde_worker_regen.safety.fake import FakeSafetyBackend

SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 128, 64, 10, 2, 5, "k_euler", 5.0, True, None, (), "txt2img")


class BrokenBackend:
    """A backend with a bug: it returns the wrong number of images, or raises something unexpected."""

    capabilities = BackendCapabilities("broken", 1, ())
    post_processors: tuple[str, ...] = ()

    def __init__(self, raises: bool) -> None:
        self.raises = raises

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes]:
        if self.raises:
            raise KeyError("oops")
        return [b"one"]

    def preload(self, model: str) -> None:
        """Nothing to load: these tests never preload."""

    def post_process(self, name: str, image: Image.Image, strength: float) -> Image.Image:
        """A bug in a post-processor: it raises something unexpected."""
        raise KeyError("oops")


def test_inference_core_answers_done_with_every_image_and_child_timestamps() -> None:
    core = InferenceChild(InferenceCore(FakeInferenceBackend(FakeBackendSettings())), 4)
    result = core.handle(RunJob(4, SPEC, JobInputs()))
    assert isinstance(result, JobDone)
    assert result.incarnation == 4 and result.job_key == "job-1" and len(result.result.images) == 2
    assert result.result.finished_at >= result.result.started_at


def test_inference_core_turns_every_failure_into_job_failed() -> None:
    fake = InferenceChild(InferenceCore(FakeInferenceBackend(FakeBackendSettings(fail_marker="!"))), 1)
    assert isinstance(
        fake.handle(RunJob(1, GenerationSpec(**{**_fields(SPEC), "prompt": "!"}), JobInputs())), JobFailed
    )
    for raises, reason in ((True, "KeyError"), (False, "returned 1 images for a batch of 2")):
        result = InferenceChild(InferenceCore(BrokenBackend(raises)), 1).handle(RunJob(1, SPEC, JobInputs()))
        assert isinstance(result, JobFailed) and reason in result.failure.reason


def test_a_post_processor_bug_fails_its_form_and_the_child_goes_on() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    child = InferenceChild(InferenceCore(BrokenBackend(raises=False)), 1)
    answer = child.handle(RunForm(1, FormRequest("f", "RealESRGAN_x4plus", buffer.getvalue())))
    assert isinstance(answer, FormDone) and answer.outcome.error is not None and "KeyError" in answer.outcome.error
    assert isinstance(child.handle(RunJob(1, SPEC, JobInputs())), JobFailed)  # still answering


def test_inference_core_refuses_safety_work() -> None:
    core = InferenceChild(InferenceCore(FakeInferenceBackend(FakeBackendSettings())), 1)
    assert isinstance(
        core.handle(CheckImages(1, ImagesToCheck("k", "p", 64, 64, (), CensorPolicy(False)))), ChildFailed
    )


def test_safety_core_censors_by_policy_and_replaces_with_the_censor_image() -> None:
    child = SafetyChild(SafetyCore(FakeSafetyBackend(FakeSafetySettings(nsfw_marker="[n]"))), 2)
    keep = child.handle(
        CheckImages(2, ImagesToCheck("a", "x [n]", 64, 32, (b"img0", b"img1"), CensorPolicy(censor_nsfw=False)))
    )
    assert isinstance(keep, SafetyChecked) and keep.incarnation == 2 and keep.job_key == "a"
    assert [(v.is_nsfw, v.censorship, v.replacement) for v in keep.verdicts] == [(True, None, None)] * 2
    core = SafetyCore(FakeSafetyBackend(FakeSafetySettings(nsfw_marker="[n]")))
    [censored] = core.check(ImagesToCheck("b", "x [n]", 64, 32, (b"img0",), CensorPolicy(censor_nsfw=True)))
    assert censored.censorship == "nsfw"
    assert censored.replacement == censor_image("nsfw", 64, 32)


class ExplodingSafety:
    """A safety backend that cannot check anything."""

    name = "exploding"

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        raise RuntimeError("model not loaded")


def test_an_image_that_cannot_be_checked_does_not_go_out() -> None:
    core = SafetyCore(ExplodingSafety())
    [verdict] = core.check(ImagesToCheck("c", "p", 64, 64, (b"img",), CensorPolicy(False)))
    assert verdict.censorship == "csam" and verdict.replacement == censor_image("csam", 64, 64)


def _fields(spec: GenerationSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}
