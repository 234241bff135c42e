"""The records the local horde keeps: users, workers, waiting prompts and processing generations.

They mirror the server's tables (`User`, `ImageWorker`, `ImageWaitingPrompt`,
`ImageProcessingGeneration`) closely enough that its rules can be written against them.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from horde_worker_regen.localhorde.batching import accurate_steps

ANON_API_KEY = "0000000000"
# A worker with no speed samples yet counts as 1 MPS/s, so it is not treated as slow.
DEFAULT_SPEED = 1_000_000.0
SLOW_WORKER_SPEED = 500_000.0
SPEED_SAMPLES = 20
STALE_AFTER_S = 300


def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible tag for logs: API keys themselves are never logged."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


@dataclass
class User:
    """A horde account."""

    id: int
    username: str
    api_key: str
    kudos: float = 0.0
    evaluating_kudos: float = 0.0
    trusted: bool = False
    roles: set[str] = field(default_factory=set)
    worker_invited: int = 0
    created: float = 0.0
    megapixelsteps_generated: float = 0.0
    images_generated: int = 0
    images_requested: int = 0
    forms_fulfilled: int = 0  # alchemy forms delivered by this account's alchemists
    forms_requested: int = 0  # alchemy forms this account paid for

    @property
    def alias(self) -> str:
        """`username#id`, the form the API shows and `priority_usernames` uses."""
        return f"{self.username}#{self.id}"

    @property
    def is_anon(self) -> bool:
        """The shared anonymous account."""
        return self.id == 0

    def has_role(self, role: str) -> bool:
        """customizer, moderator, flagged, special, ..."""
        return role in self.roles


@dataclass
class Worker:
    """An image worker; the check-in fields are the values stored at the last (debounced) check-in.

    `kind` is the server's worker type: one name table serves every type, so an image worker and an
    alchemist (`alchemy_entities.AlchemistWorker`) can never share a name.
    """

    kind: ClassVar[str] = "image"

    id: str
    name: str
    owner_id: int
    created: float
    bridge_agent: str = "unknown:0:unknown"
    models: list[str] = field(default_factory=list)
    max_pixels: int = 512 * 512
    nsfw: bool = True
    blacklist: list[str] = field(default_factory=list)
    threads: int = 1
    require_upfront_kudos: bool = False
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_unsafe_ipaddr: bool = True
    allow_post_processing: bool = True
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    limit_max_steps: bool = False
    extra_slow_worker: bool = False
    last_check_in: float | None = None
    maintenance: bool = False
    maintenance_msg: str = ""
    paused: bool = False
    info: str = ""
    team: str = ""
    suspicion: int = 0
    uncompleted_jobs: int = 0
    aborted_jobs: int = 0
    abort_window_start: float = 0.0
    kudos_generated: float = 0.0
    kudos_uptime: int = 0
    uptime: float = 0.0
    uptime_unrewarded: float = 0.0
    fulfilments: int = 0
    megapixelsteps_generated: float = 0.0
    performances: deque[float] = field(default_factory=lambda: deque(maxlen=SPEED_SAMPLES))

    @property
    def speed(self) -> float:
        """Average pixelsteps per second over the last 20 images."""
        if not self.performances:
            return DEFAULT_SPEED
        return sum(self.performances) / len(self.performances)

    def is_stale(self, now: float) -> bool:
        """Offline: no check-in for 300 s."""
        return self.last_check_in is None or now - self.last_check_in > STALE_AFTER_S


@dataclass
class StoredImage:
    """Where one input image lives: a key in the object store, or a client URL passed through."""

    key: str | None = None
    url: str | None = None
    strength: float | None = None


@dataclass
class WaitingPrompt:
    """A client request for `n` images (`ImageWaitingPrompt`)."""

    id: str
    user_id: int
    prompt: str
    params: dict[str, Any]
    gen_payload: dict[str, Any]
    n: int
    jobs: int
    created: float
    expiry: float
    kudos: float
    extra_priority: float = 0.0
    models: list[str] = field(default_factory=list)
    nsfw: bool = True
    censor_nsfw: bool = True
    trusted_workers: bool = False
    slow_workers: bool = True
    extra_slow_workers: bool = False
    r2: bool = True
    shared: bool = False
    disable_batching: bool = False
    workers: list[str] = field(default_factory=list)
    worker_blacklist: bool = False
    safe_ip: bool = True
    source_image: StoredImage | None = None
    source_processing: str = "img2img"
    source_mask: StoredImage | None = None
    extra_source_images: list[StoredImage] = field(default_factory=list)
    seed: int | None = None
    seed_variation: int | None = None
    faulted: bool = False
    faulted_jobs: int = 0
    consumed_kudos: float = 0.0

    @property
    def width(self) -> int:
        """Image width."""
        return int(self.params.get("width", 512))

    @property
    def height(self) -> int:
        """Image height."""
        return int(self.params.get("height", 512))

    @property
    def is_img2img(self) -> bool:
        """Has a source image processed as img2img (or remix)."""
        return self.source_image is not None and self.source_processing in ("img2img", "remix")

    @property
    def is_painting(self) -> bool:
        """Inpainting or outpainting."""
        return self.source_image is not None and self.source_processing in ("inpainting", "outpainting")

    @property
    def accurate_steps(self) -> float:
        """Steps weighted by sampler cost (§3.4)."""
        return accurate_steps(
            int(self.params.get("steps", 30)),
            str(self.params.get("sampler_name", "k_euler_a")),
            img2img=self.source_image is not None and self.source_processing == "img2img",
            denoising_strength=self.params.get("denoising_strength"),
        )

    @property
    def things(self) -> float:
        """Pixelsteps of one image."""
        return self.width * self.height * self.accurate_steps


@dataclass
class ProcessingGeneration:
    """One image handed to one worker (`ImageProcessingGeneration`)."""

    id: str
    wp_id: str
    worker_id: str
    model: str
    start_time: float
    ttl: int
    seed: int
    generation: str | None = None
    faulted: bool = False
    fake: bool = False
    censored: bool = False
    cancelled: bool = False
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)
    submit_time: float | None = None
    reward: float = 0.0

    @property
    def is_completed(self) -> bool:
        """A generation was stored."""
        return self.generation is not None

    def is_stale(self, now: float) -> bool:
        """In progress and older than its ttl."""
        if self.is_completed or self.faulted:
            return False
        return now - self.start_time > self.ttl


@dataclass(frozen=True)
class SubmitAttempt:
    """One submit the horde received for a job it knows, refused or not, so a test can tell a worker
    that reports an id twice from one that retries a submit whose answer it never got."""

    state: str  # the submitted `state`: ok, censored, csam or faulted
    applied: bool  # the job was neither completed nor faulted before it, and credentials were right
