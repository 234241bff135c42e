"""Configuration of the local horde (a YAML or JSON file, or built in code by tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7001


class UserConfig(BaseModel):
    """An account to create at start-up."""

    model_config = ConfigDict(extra="forbid")

    username: str
    id: int | None = Field(default=None, ge=1, description="Generated when omitted.")
    api_key: str | None = Field(default=None, description="Generated (22 chars) when omitted.")
    kudos: float = 0.0
    trusted: bool = False
    roles: list[str] = Field(default_factory=list, description="customizer, moderator, flagged, special")
    worker_invited: int = 0


class SeedRequest(BaseModel):
    """A request queued at start-up, as if `POST /v2/generate/async` had been called by `username`."""

    model_config = ConfigDict(extra="forbid")

    username: str
    body: dict[str, Any]
    copies: int = Field(default=1, ge=1)


class SeedInterrogation(BaseModel):
    """Alchemy queued at start-up, as if `POST /v2/interrogate/async` had been called by `username`
    (a URL `source_image` needs its `image_size`, which the endpoint would have fetched)."""

    model_config = ConfigDict(extra="forbid")

    username: str
    body: dict[str, Any]
    image_size: tuple[int, int] | None = None
    copies: int = Field(default=1, ge=1)


class ModelEntry(BaseModel):
    """A model added to the reference (e.g. a test checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    baseline: str = "stable diffusion 1"
    inpainting: bool = False
    nsfw: bool = False
    min_steps: int = 20
    max_steps: int = 40


class ModelStatsConfig(BaseModel):
    """Seed values for `GET /v2/stats/img/models`."""

    model_config = ConfigDict(extra="forbid")

    day: dict[str, int] = Field(default_factory=dict)
    month: dict[str, int] = Field(default_factory=dict)
    total: dict[str, int] = Field(default_factory=dict)


class LocalHordeConfig(BaseModel):
    """Everything the local horde can be told at start-up."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="Base used in upload/source URLs; defaults to the scheme and host each request used.",
    )
    users: list[UserConfig] = Field(default_factory=list)
    requests: list[SeedRequest] = Field(default_factory=list)
    interrogations: list[SeedInterrogation] = Field(default_factory=list)
    model_reference: str | None = Field(default=None, description="Path of a stable_diffusion.json.")
    models: list[ModelEntry] = Field(default_factory=list)
    model_stats: ModelStatsConfig = Field(default_factory=ModelStatsConfig)
    sweep_interval: float = Field(default=60.0, ge=0, description="0 disables the background sweep.")
    admin_enabled: bool = True
    detect_suspicion: bool = Field(
        default=True,
        description="Untrusted workers faster than 20 MPS/s per image or dropping jobs accrue suspicion; at 5 they "
        "are paused (fake jobs, nothing credited), as on the real horde. Turn off for fast fake backends.",
    )
    fake_clock: bool = Field(default=False, description="Start with a clock moved only by /_admin/clock.")
    url_secret: str | None = None


def load_config(path: str | Path) -> LocalHordeConfig:
    """Read a YAML or JSON file."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return LocalHordeConfig.model_validate(data or {})
