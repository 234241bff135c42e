"""The interfaces every safety backend implements: the image check, and the alchemy analysis forms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image

    from horde_worker_regen.safety.caption_options import CaptionOptions
    from horde_worker_regen.safety.ranking import Ranked


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


@runtime_checkable
class FormBackend(SafetyBackend, Protocol):
    """A safety backend that also runs the alchemy analysis forms on a decoded source image
    (the nsfw form is its image check without a prompt)."""

    def interrogate(self, picture: Image) -> Mapping[str, list[Ranked]]:
        """The best labels of each word list for the picture, best first (`ranking.top_ranked`)."""
        ...

    def caption(self, picture: Image, options: CaptionOptions) -> str:
        """A caption of the picture."""
        ...
