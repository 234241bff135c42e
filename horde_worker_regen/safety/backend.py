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


AVAILABLE_SAFETY_BACKENDS = frozenset({"fake"})


class SafetyBackendUnavailable(RuntimeError):
    """The configured safety backend is not part of this version."""


def require_safety_backend(name: str) -> None:
    """Raise SafetyBackendUnavailable, saying what to do, unless this version ships `name`."""
    if name not in AVAILABLE_SAFETY_BACKENDS:
        raise SafetyBackendUnavailable(
            f"safety_backend '{name}' is not available in this version of the worker (it comes in a later one). "
            "To run the pipeline against a local horde, set inference_backend: fake and safety_backend: fake."
        )
