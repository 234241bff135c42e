"""The interface every safety backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SafetyScores:
    """What a safety backend found in one image."""

    is_nsfw: bool
    is_csam: bool


class SafetyBackend(Protocol):
    """Checks one generated image (WebP bytes) against its prompt."""

    name: str

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        """The verdict on one image."""
        ...
