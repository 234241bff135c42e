"""The records of alchemy: alchemists, interrogation requests and their forms, and where they are kept.

They mirror the server's `InterrogationWorker`, `Interrogation` and `InterrogationForms` tables
(horde/classes/stable/interrogation*.py) closely enough that its rules can be written against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from horde_worker_regen.localhorde.alchemy_forms import DEFAULT_MAX_TILES, image_tiles
from horde_worker_regen.localhorde.entities import StoredImage, Worker

# An alchemist with no delivery yet counts as fast (the speed rule only bars alchemists at 10 s a form).
DEFAULT_SECONDS_PER_FORM = 1.0


class FormState(Enum):
    """`State` of one form; the value is what the status endpoint shows."""

    WAITING = "waiting"
    PROCESSING = "processing"
    DONE = "done"
    FAULTED = "faulted"
    CANCELLED = "cancelled"


@dataclass
class AlchemistWorker(Worker):
    """An interrogation worker. `forms` and `max_tiles` are the values of its last (debounced) check-in;
    `performances` holds the seconds each of its last 20 forms took, and `speed` is their average."""

    kind: ClassVar[str] = "interrogation"

    forms: list[str] = field(default_factory=list)
    max_tiles: int = DEFAULT_MAX_TILES  # the server stores it as the worker's `max_power`
    forms_done: dict[str, int] = field(default_factory=dict)  # forms delivered, by name

    @property
    def speed(self) -> float:
        """Seconds per form over the last 20 forms (lower is faster, unlike an image worker's speed)."""
        if not self.performances:
            return DEFAULT_SECONDS_PER_FORM
        return sum(self.performances) / len(self.performances)


@dataclass
class Interrogation:
    """A requester's image and the forms wanted of it (`Interrogation`)."""

    id: str
    user_id: int
    source: StoredImage  # a key in the source bucket (sent as base64), or the requester's own URL
    width: int
    height: int
    created: float
    expiry: float
    extra_priority: float  # the requester's kudos when it was queued
    trusted_workers: bool = False
    slow_workers: bool = True
    safe_ip: bool = True
    consumed_kudos: float = 0.0
    form_ids: list[str] = field(default_factory=list)

    @property
    def image_tiles(self) -> int:
        """512² tiles of the source image."""
        return image_tiles(self.width, self.height)


@dataclass
class InterrogationForm:
    """One form of a request (`InterrogationForms`): its name, the requester's payload, its value in
    kudos, and where it is in WAITING → PROCESSING → DONE (or back to WAITING when aborted, FAULTED
    after the fourth abort, CANCELLED by the requester)."""

    id: str
    i_id: str
    name: str
    payload: dict[str, Any] | None
    kudos: float
    created: float
    state: FormState = FormState.WAITING
    result: dict[Any, Any] | None = None
    worker_id: str | None = None
    initiated: float | None = None
    expiry: float | None = None
    abort_count: int = 0
    submit_time: float | None = None

    def is_stale(self, now: float) -> bool:
        """Popped and not submitted before its deadline."""
        return self.state is FormState.PROCESSING and self.expiry is not None and now > self.expiry


@dataclass
class AlchemyStore:
    """Every interrogation request and form, in the order they were queued."""

    interrogations: dict[str, Interrogation] = field(default_factory=dict)
    forms: dict[str, InterrogationForm] = field(default_factory=dict)

    def add(self, interrogation: Interrogation, forms: list[InterrogationForm]) -> None:
        """Queue a request with its forms."""
        self.interrogations[interrogation.id] = interrogation
        for form in forms:
            self.forms[form.id] = form
            interrogation.form_ids.append(form.id)

    def forms_of(self, interrogation: Interrogation) -> list[InterrogationForm]:
        """A request's forms, in the order they were asked for."""
        return [self.forms[form_id] for form_id in interrogation.form_ids if form_id in self.forms]

    def delete(self, interrogation: Interrogation) -> None:
        """Remove a request and, as the database cascade does, its forms."""
        for form_id in interrogation.form_ids:
            self.forms.pop(form_id, None)
        self.interrogations.pop(interrogation.id, None)
