"""The bridgeData model: every key an operator's `bridgeData.yaml` may hold.

Keys, meanings and defaults follow the official worker so that an existing file
keeps working unchanged. Aliases are the other spellings that file format has
used over time; they are accepted on input and never written back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from horde_worker_regen.config.field_rules import (
    MIN_DASHBOARD_TOKEN_LENGTH,
    ApiKey,
    CustomModels,
    GpuIndices,
    HordeUrl,
    PriorityUsernames,
    SpoolDir,
    check_dashboard_token,
    check_gpu_overrides,
    empty_when_left_blank,
)
from horde_worker_regen.config.post_processor_sources import PostProcessorSources
from horde_worker_regen.config.roles import DEFAULT_ALCHEMIST_NAME, DEFAULT_FORMS, normalise_forms
from horde_worker_regen.config.sections import (
    FakeBackendSettings,
    FakeSafetySettings,
    GpuDeviceSettings,
)
from horde_worker_regen.config.telemetry_settings import DEFAULT_TELEMETRY_INTERVAL_S, TelemetryInterval

ANONYMOUS_API_KEY = "0000000000"
DEFAULT_HORDE_URL = "https://aihorde.net/api/"
DEFAULT_WORKER_NAME = "An Awesome Dreamer"

_UNSAFE_IN_FOLDER_NAME = re.compile(r"[^A-Za-z0-9._-]+")

Seconds = Annotated[int, Field(ge=1, le=86_400)]


class BridgeData(BaseModel):
    """The worker's settings as read from bridgeData.yaml, env vars and CLI flags."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)

    # --- Identity and horde connection -------------------------------------------------
    horde_url: HordeUrl = Field(default=DEFAULT_HORDE_URL, description="Base URL of the AI Horde API.")
    api_key: ApiKey = Field(
        default=SecretStr(ANONYMOUS_API_KEY),
        description="Your AI Horde API key (22 characters). The anonymous key cannot run a worker.",
    )
    dreamer_name: str = Field(
        default=DEFAULT_WORKER_NAME,
        min_length=1,
        max_length=100,
        validation_alias=AliasChoices("dreamer_name", "dreamer_worker_name", "worker_name"),
        description="The worker's name; unique across the whole horde.",
    )
    priority_usernames: PriorityUsernames = Field(
        default_factory=list, description="Requesters (alias#id) whose jobs are served first."
    )

    # --- Capacity ---------------------------------------------------------------------
    max_threads: int = Field(default=1, ge=1, le=16, description="Jobs inferring at once.")
    queue_size: int = Field(default=1, ge=0, le=4, description="Extra jobs held ready.")
    max_batch: int = Field(default=1, ge=1, le=20, description="Most images per job (batching).")
    max_power: int = Field(default=8, ge=1, le=512, description="Largest image: max_power x 8 x 64 x 64 pixels.")
    safety_on_gpu: bool = Field(default=False, description="Run the safety model on the GPU.")
    gpu_device_indices: GpuIndices = Field(
        default=None,
        description="Which GPUs to use, by CUDA index (PCI bus order); default: every GPU found.",
    )
    gpu_device_overrides: dict[Annotated[int, Field(ge=0, le=63)], GpuDeviceSettings] = Field(
        default_factory=dict,
        description="Per-GPU max_threads, max_power and models_to_load, by CUDA index.",
    )

    # --- Content policy ---------------------------------------------------------------
    require_upfront_kudos: bool = Field(default=False, description="Only serve requesters who already hold the kudos.")
    nsfw: bool = Field(default=True, description="Accept jobs that request NSFW content.")
    censor_nsfw: bool = Field(default=False, description="Censor NSFW images found in SFW requests.")
    censorlist: list[str] = Field(default_factory=list, description="Words whose presence censors the result.")
    blacklist: list[str] = Field(default_factory=list, description="Words whose presence makes the horde skip a job.")

    # --- Job kinds accepted -------------------------------------------------------------
    allow_img2img: bool = Field(default=True, description="Accept img2img jobs.")
    allow_painting: bool = Field(
        default=True,
        validation_alias=AliasChoices("allow_painting", "allow_inpainting"),
        description="Accept inpainting and outpainting jobs (needs allow_img2img).",
    )
    allow_post_processing: bool = Field(
        default=True, description="Accept jobs with upscalers, face fixers, background removal."
    )
    post_processor_sources: Annotated[PostProcessorSources, empty_when_left_blank(dict)] = Field(
        default_factory=dict,
        description="Mirrors for the level-13 post-processors' files and strip_background's u2net.onnx, by horde "
        "name (or face_detection, face_parsing): {url, sha256}; the sha256 left out, the first download's is "
        "recorded and kept to.",
    )
    allow_controlnet: bool = Field(default=False, description="Accept ControlNet jobs.")
    allow_sdxl_controlnet: bool = Field(
        default=False,
        description="Accept SDXL ControlNet, layer-diffuse and QR-code jobs (needs allow_controlnet).",
    )
    allow_lora: bool = Field(default=False, description="Accept jobs that use LoRAs.")
    allow_unsafe_ip: bool = Field(
        default=True, description="Accept jobs from requesters on VPN or unsafe IPs (allow_unsafe_ipaddr in the pop)."
    )
    allow_private_source_urls: bool = Field(
        default=False,
        description="Let jobs make the worker fetch source images from loopback, private or link-local addresses "
        "(redirects included); the horde's own origin is always allowed.",
    )
    extra_slow_worker: bool = Field(default=False, description="Very slow hardware: longer deadlines, fewer jobs.")
    limit_max_steps: bool = Field(default=False, description="Skip jobs with more steps than the model usually needs.")

    # --- Models -----------------------------------------------------------------------
    models_to_load: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("models_to_load", "image_models_to_load"),
        description="Model names and meta-instructions (ALL SDXL, TOP 3, ...).",
    )
    models_to_skip: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("models_to_skip", "image_models_to_skip"),
        description="Model names and meta-instructions to leave out.",
    )
    load_large_models: bool = Field(default=False, description="Let meta-instructions include Flux and Stable Cascade.")
    custom_models: CustomModels = Field(
        default_factory=list, description="Local checkpoints (needs the horde's customizer role)."
    )
    cache_home: Path = Field(
        default=Path("./models/"),
        validation_alias=AliasChoices("cache_home", "models_folder_parent"),
        description="Folder where models and the model reference live.",
    )
    spool_dir: SpoolDir = Field(
        default=None,
        description="Folder where finished results wait until submitted, so a crash loses none "
        "(default: cache_home/spool/<dreamer_name>); one worker at a time may use it.",
    )
    max_lora_cache_size: int = Field(default=10, ge=10, le=2048, description="LoRA cache limit in GB.")
    civitai_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("civitai_api_token", "CIVIT_API_TOKEN"),
        description="CivitAI token for LoRA/TI downloads.",
    )
    purge_loras_on_download: bool = Field(
        default=False, description="Delete LoRAs no longer referenced when downloading new ones."
    )

    # --- Memory and performance knobs -----------------------------------------------------
    high_memory_mode: bool = False
    very_high_memory_mode: bool = False
    high_performance_mode: bool = False
    moderate_performance_mode: bool = False
    very_fast_disk_mode: bool = False
    post_process_job_overlap: bool = False
    unload_models_from_vram_often: bool = True
    cycle_process_on_model_change: bool = False

    # --- Backends -------------------------------------------------------------------------
    inference_backend: Literal["hordelib", "fake"] = Field(
        default="hordelib", description="What generates images: hordelib on the GPU, or a fast fake for trials."
    )
    safety_backend: Literal["horde_safety", "fake"] = Field(
        default="horde_safety", description="What checks images for NSFW/CSAM: horde_safety, or a rule-based fake."
    )
    fake_backend: FakeBackendSettings = Field(
        default_factory=FakeBackendSettings, description="Timing and faults of the fake inference backend."
    )
    fake_safety: FakeSafetySettings = Field(
        default_factory=FakeSafetySettings, description="Prompt markers the fake safety backend flags."
    )

    # --- Watchdog limits (seconds) --------------------------------------------------------
    process_timeout: Seconds = Field(default=300, description="A child silent this long is replaced.")
    preload_timeout: Seconds = Field(default=80, description="Longest model load.")
    download_timeout: Seconds = Field(default=121, description="Longest LoRA/TI download.")
    post_process_timeout: Seconds = Field(default=60, description="Longest post-processing.")
    inference_step_timeout: Seconds = Field(
        default=15, description="Longest single step of a 512x512 image; scaled by the job's pixels x batch."
    )
    job_retries: int = Field(
        default=1,
        ge=0,
        le=3,
        description="Times a job whose inference process was lost or killed is retried on a fresh process.",
    )
    quarantine_model_after_strikes: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Jobs of a model that each killed every process they ran on, with no success in between, "
        "before the model is quarantined (no longer offered until fault_breaker_cooldown passes).",
    )
    fault_breaker_cooldown: int = Field(
        default=60,
        ge=0,
        le=10_080,
        description="Minutes a model or feature stays withdrawn after its jobs keep faulting "
        "(0: until the worker restarts).",
    )
    recycle_process_after_jobs: int = Field(
        default=0, ge=0, le=100_000, description="Restart an inference process after this many jobs (0: never)."
    )
    recycle_process_above_rss_mib: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        description="Restart an inference process, between jobs, whose resident memory exceeds this (0: never).",
    )

    # --- Console behaviour ----------------------------------------------------------------
    minutes_allowed_without_jobs: int = Field(
        default=30, ge=0, le=10_080, description="Warn after this long without a job (0: never)."
    )
    stats_output_frequency: int = Field(default=30, ge=1, le=3600, description="Seconds between status lines.")
    suppress_speed_warnings: bool = False
    limited_console_messages: bool = False

    # --- Web dashboard --------------------------------------------------------------------
    dashboard_enabled: bool = Field(
        default=True, description="Serve the web dashboard, /status.json, /metrics and /healthz."
    )
    dashboard_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the dashboard listens on; anything but loopback needs dashboard_token.",
    )
    dashboard_port: int = Field(
        default=7070, ge=0, le=65535, description="TCP port of the dashboard; 0 picks a free one (the URL is logged)."
    )
    dashboard_token: SecretStr | None = Field(
        default=None,
        description="Secret asked of every dashboard request (bearer header or ?token=); "
        f"at least {MIN_DASHBOARD_TOKEN_LENGTH} characters; required when dashboard_host is not loopback.",
    )
    telemetry_interval: TelemetryInterval = DEFAULT_TELEMETRY_INTERVAL_S

    # --- Fault policy ---------------------------------------------------------------------
    remove_maintenance_on_init: bool = Field(default=False, description="Take the worker out of maintenance at start.")
    exit_on_unhandled_faults: bool = Field(
        default=False,
        description="Stop the worker (exit status 1) when a fault it cannot handle occurs: an unexpected "
        "error in the pipeline, the popper or the model downloads, or an inference process that fails to come back.",
    )
    idle_pop_interval: float = Field(
        default=1.0,
        ge=0.5,
        le=60.0,
        description="Seconds between pops while the horde has no job for this worker (at least 0.5). For a "
        "minute after a job arrives the worker pops four times as often; after 10 minutes without one, half "
        "as often.",
    )
    horde_backoff_cap: float = Field(
        default=60.0,
        ge=0.1,
        le=600.0,
        description="Longest wait, in seconds, between pops while the horde is unreachable or keeps this worker "
        "in maintenance (the wait grows from 1 s up to this).",
    )
    horde_model_stickiness: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("horde_model_stickiness", "model_stickiness"),
        description="Preference for models already loaded (0..1).",
    )
    capture_kudos_training_data: bool = False
    kudos_training_data_file: Path | None = None

    # --- Accepted for compatibility (see compat.py for what each does here) ------------
    dynamic_models: bool = False
    number_of_dynamic_models: int = Field(default=0, ge=0)
    max_models_to_download: int = Field(default=10, ge=0)
    ram_to_leave_free: str | int = "80%"
    vram_to_leave_free: str | int = "80%"
    disable_terminal_ui: bool = True
    temp_dir: Path | None = None
    always_download: bool = True
    disable_disk_cache: bool = False

    # --- Other roles of the official file (see roles.py): the scribe's are ignored, the alchemist's checked ---
    scribe_name: str = Field(default="An Awesome Scribe", max_length=100, description="Ignored: text worker.")
    kai_url: str = Field(default="http://localhost:5000", max_length=2048, description="Ignored: text worker.")
    max_length: int = Field(default=80, ge=1, le=1_000_000, description="Ignored: text worker.")
    max_context_length: int = Field(default=1024, ge=1, le=10_000_000, description="Ignored: text worker.")
    branded_model: bool = Field(default=True, description="Ignored: text worker.")
    dreamer: bool = Field(default=True, description="Serve image jobs (false: an alchemist-only worker).")
    alchemist: bool = Field(
        default=False, description="Serve alchemy forms as alchemist_name (off unless set: see the README)."
    )
    alchemist_name: str = Field(
        default=DEFAULT_ALCHEMIST_NAME,
        min_length=1,
        max_length=100,
        description="The alchemist's worker name; unique across the horde, so not dreamer_name.",
    )
    forms: Annotated[list[str], empty_when_left_blank(list), AfterValidator(normalise_forms)] = Field(
        default_factory=lambda: list(DEFAULT_FORMS),
        description="Alchemy forms to serve (lower case, '-' as '_'); empty: caption, nsfw, interrogation, "
        "post-process.",
    )
    alchemy_caption_enabled: bool = Field(
        default=False, description="Serve caption forms (BLIP is loaded in the safety process: it costs memory)."
    )
    alchemy_allow_concurrent: bool = Field(default=True, description="Run alchemy alongside image jobs.")
    alchemy_max_concurrency: int = Field(
        default=1, ge=1, le=16, description="Alchemy forms held at once, per kind (analysis, post-processing)."
    )
    alchemy_vram_headroom_mb: int = Field(
        default=2000, ge=0, le=1_048_576, description="Free VRAM (MB) alchemy leaves for image jobs."
    )

    @model_validator(mode="after")
    def _gpu_overrides_match(self) -> BridgeData:
        check_gpu_overrides(self.gpu_device_overrides, self.gpu_device_indices, self.max_power)
        return self

    @field_validator("dashboard_token")
    @classmethod
    def _dashboard_token_guards_open_hosts(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        raw = value.get_secret_value() if value is not None else None
        check_dashboard_token(raw, info.data.get("dashboard_host"), info.data.get("dashboard_enabled", True))
        return value

    @property
    def max_pixels(self) -> int:
        """The `max_pixels` the worker declares to the horde."""
        return self.max_power * 8 * 64 * 64

    @property
    def spool_folder(self) -> Path:
        """Where finished results are spooled until submitted: by default one folder per worker name, so
        workers sharing a cache_home never resume (or clean up) each other's results."""
        if self.spool_dir is not None:
            return self.spool_dir
        slug = _UNSAFE_IN_FOLDER_NAME.sub("_", self.dreamer_name).strip("._")
        return self.cache_home / "spool" / (slug or "worker")

    @property
    def is_anonymous(self) -> bool:
        """Whether the API key is the anonymous one, which cannot run a worker."""
        return self.api_key.get_secret_value() == ANONYMOUS_API_KEY

    def secrets(self) -> list[str]:
        """Every secret value held here, for log redaction."""
        found = [] if self.is_anonymous else [self.api_key.get_secret_value()]
        if self.civitai_api_token is not None:
            found.append(self.civitai_api_token.get_secret_value())
        if self.dashboard_token is not None:
            found.append(self.dashboard_token.get_secret_value())
        return [value for value in found if value]
