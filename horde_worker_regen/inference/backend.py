"""The interface every inference backend implements, and what each one promises the horde.

A backend's `BackendCapabilities` is the honest list of what it can do, and the bridge-capability
version (horde-api.md §3.9) it therefore claims in the worker's `bridge_agent`: the highest key of
the AI Horde's table whose every capability the backend really implements and is tested on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from horde_worker_regen.jobs.spec import FailureKind, GenerationSpec, JobInputs, Stage


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend promises: the claimed capability version and the features behind it."""

    name: str
    version: int
    promises: tuple[str, ...]


@dataclass(frozen=True)
class Generation:
    """Every image of a job, WebP-encoded, and the `gen_metadata` entries the generation produced."""

    images: list[bytes]
    gen_metadata: tuple[dict[str, str], ...] = field(default=())


# (job_key, step, total_steps): called by a backend as sampling steps finish.
ProgressSink = Callable[[str, int, int], None]
# (job_key, stage): called by a backend as a job enters each stage, so the parent can time the stage.
StageSink = Callable[[str, Stage], None]


class InferenceError(RuntimeError):
    """The job cannot be generated; the whole batch is reported as faulted.

    A plain `InferenceError` is transient: this job failed, the next one may not. The subclasses are
    deterministic: every job needing the same `subject` (a model or a feature) would fail the same way,
    so the parent stops asking for such jobs after a couple of them.
    """

    kind: FailureKind = "transient"
    subject: str = ""


class LastingFailure(InferenceError):
    """A deterministic failure: every job needing `subject` (a model name, or a feature such as
    "post_processing") would fail the same way."""

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(detail)
        self.subject = subject


class ModelFileMissing(LastingFailure):
    """The model's file is not on disk (or the model is unknown to the backend)."""

    kind: FailureKind = "missing_model"


class ModelUnloadable(LastingFailure):
    """The model's file is there but cannot be loaded (corrupt, or its reference entry is unusable)."""

    kind: FailureKind = "unloadable_model"


class FeatureUnsupported(LastingFailure):
    """The job needs a feature this backend cannot provide here (a post-processor model not installed)."""

    kind: FailureKind = "unsupported_feature"


class FeatureFailed(LastingFailure):
    """A feature the job needs failed while running (a post-processor that produced no image)."""

    kind: FailureKind = "failing_feature"


class InferenceBackend(Protocol):
    """Generates every image of one job, WebP-encoded, in batch order."""

    capabilities: BackendCapabilities
    # The capability-level-13 post-processors (by horde name) this backend can run in this process,
    # as checked when it started; the child reports them in its `ChildReady`.
    post_processors: tuple[str, ...]

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes] | Generation:
        """Images `0..n_iter-1` in batch order (with any gen_metadata); raises InferenceError."""
        ...

    def preload(self, model: str) -> None:
        """Load `model` ahead of its next job (a backend that loads on demand may do nothing)."""
        ...

    def post_process(self, name: str, image: Image.Image, strength: float) -> Image.Image:
        """One image through post-processor `name` (an alchemy form), as a job's post-processing runs it;
        `strength` is a face fixer's `facefixer_strength`. Raises InferenceError."""
        ...
