"""The domain types of one alchemy form: what the horde asks of the alchemist, and what it yields.

An alchemy pop hands out forms (horde-v13-and-alchemy.md §3): each names one thing to do with one
source image. The parent fetches the source and sends a `FormRequest` to the child that holds the
model (caption, interrogation and nsfw: the safety child, which already holds CLIP; post-processors:
an inference child); the child answers with a `FormOutcome`. Like `spec.py`, nothing here imports
from the rest of the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The forms that answer with JSON and run beside the safety checks; every other form this worker
# serves is a post-processor (strip_background included) whose answer is a WebP image.
ANALYSIS_FORMS = ("caption", "interrogation", "nsfw")
FormLane = Literal["analysis", "post_processing"]


def lane_of(form: str) -> FormLane:
    """Which kind of child runs `form`: the safety child for analysis, an inference child otherwise."""
    return "analysis" if form in ANALYSIS_FORMS else "post_processing"


@dataclass(frozen=True, slots=True)
class FormRequest:
    """One form to run: the horde's form id and name, the requester's options and the fetched source."""

    form_id: str
    form: str
    source_image: bytes
    payload: dict[str, str] = field(default_factory=dict)  # every value a string, as the horde sends them

    @property
    def lane(self) -> FormLane:
        """Which kind of child runs it."""
        return lane_of(self.form)


@dataclass(frozen=True, slots=True)
class FormOutcome:
    """What a child made of a form: a JSON `result` (analysis), a WebP `image` (post-processors), or an `error`.

    `result` is the object submitted for an analysis form (`{"caption": ...}`, `{"interrogation": {...}}`,
    `{"nsfw": ...}`); a post-processor's submit body is `{"<form>": "R2"}` once `image` is uploaded.
    """

    form_id: str
    form: str
    result: dict[str, Any] | None = None
    image: bytes | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the form produced what its kind answers with."""
        return self.error is None and (self.result is not None or self.image is not None)
