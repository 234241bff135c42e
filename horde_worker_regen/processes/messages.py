"""Every message that crosses a process boundary, in one place.

Messages are small frozen dataclasses, pickled through a `multiprocessing` Pipe. Images travel as
WebP bytes encoded in the child, never as base64 text. Every message carries the `incarnation` of
the child it is for or from: the supervisor numbers each child process it starts, and a message
whose incarnation is not the slot's current one (a reply from a child already replaced) is dropped.

Parent → child: `Ping`, `Shutdown`, `RunJob` and `Preload` (inference), `CheckImages` (safety), `RunForm`
(alchemy: either).
Child → parent: `ChildReady`, `Pong`, `ChildFailed`, `JobStage`, `JobProgress`, `JobDone`, `JobFailed`,
`ModelPreloaded` (inference), `SafetyChecked` (safety), `FormDone` (alchemy).
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.jobs.spec import (
    Generated,
    GenerationFailed,
    GenerationSpec,
    ImagesToCheck,
    ImageVerdict,
    JobInputs,
    Stage,
)

# --- Parent → child ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness probe; the child's IO thread answers with `Pong` at once, even while it works."""

    incarnation: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Finish the message in hand, then exit cleanly."""

    incarnation: int


@dataclass(frozen=True, slots=True)
class RunJob:
    """Generate every image of one job and answer `JobDone` or `JobFailed`."""

    incarnation: int
    spec: GenerationSpec
    inputs: JobInputs


@dataclass(frozen=True, slots=True)
class CheckImages:
    """Check every image of one job and answer `SafetyChecked`, with censor images where needed."""

    incarnation: int
    request: ImagesToCheck

    @property
    def job_key(self) -> str:
        """The key of the job whose images these are."""
        return self.request.job_key


@dataclass(frozen=True, slots=True)
class Preload:
    """Load `model` now, with no job (a recycled child gets back the model its predecessor held)."""

    incarnation: int
    model: str


@dataclass(frozen=True, slots=True)
class RunForm:
    """Run one alchemy form and answer `FormDone` (analysis forms: the safety child; post-processors: an
    inference child)."""

    incarnation: int
    request: FormRequest

    @property
    def form_id(self) -> str:
        """The horde's id of the form."""
        return self.request.form_id


ParentMessage = Ping | Shutdown | RunJob | CheckImages | Preload | RunForm


# --- Child → parent ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildReady:
    """The child has loaded its backend and waits for work; `device` is None on the CPU.

    `post_processors`: the post-processors with files of the worker's own (the eight of capability level
    13, strip_background) that an inference child's backend can run (its loaders work here); what the
    worker may claim and offer depends on them."""

    incarnation: int
    pid: int
    backend: str
    device: DeviceReport | None = None
    post_processors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """The child cannot go on (its backend failed to start, or an unexpected error); it exits next."""

    incarnation: int
    reason: str


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to `Ping` with the same sequence number."""

    incarnation: int
    sequence: int


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A sampling step of a running job finished (informational: nothing waits on it)."""

    incarnation: int
    job_key: str
    step: int
    total_steps: int


@dataclass(frozen=True, slots=True)
class JobStage:
    """The running job entered `stage` (the parent's stage watchdog times each stage)."""

    incarnation: int
    job_key: str
    stage: Stage


@dataclass(frozen=True, slots=True)
class ModelPreloaded:
    """Answer to `Preload`: the model is loaded (`reason` is empty), or why it is not."""

    incarnation: int
    model: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobDone:
    """Answer to `RunJob`: what the inference core made of the job (`Generated`: every image, WebP, in
    batch order, the `gen_metadata` the generation produced, times on the child's monotonic clock)."""

    incarnation: int
    job_key: str
    result: Generated


@dataclass(frozen=True, slots=True)
class JobFailed:
    """Answer to `RunJob` when the job could not be generated (the whole batch is faulted); the child
    stays usable. `GenerationFailed` says why, and whether every job needing the same model or feature
    would fail alike."""

    incarnation: int
    job_key: str
    failure: GenerationFailed


@dataclass(frozen=True, slots=True)
class SafetyChecked:
    """One verdict per image of `CheckImages`, in the same order."""

    incarnation: int
    job_key: str
    verdicts: tuple[ImageVerdict, ...]


@dataclass(frozen=True, slots=True)
class FormDone:
    """Answer to `RunForm`: its result, its WebP image, or why it failed (the child stays usable)."""

    incarnation: int
    outcome: FormOutcome


ChildMessage = (
    ChildReady
    | ChildFailed
    | Pong
    | JobStage
    | JobProgress
    | JobDone
    | JobFailed
    | ModelPreloaded
    | SafetyChecked
    | FormDone
)
