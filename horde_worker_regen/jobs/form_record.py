"""One record per popped alchemy form, and the explicit state machine it moves through.

```
popped → queued → running → reporting → submitted
   └────────┴─────────┴──→ reporting (the form failed: reported faulted once) → faulted
   any non-terminal state ─────────────────────────────────────────────────────→ dropped
```

`popped` covers the source image's fetch; `queued` waits for its child (the safety child for the
analysis forms, an idle inference slot for the post-processors); `reporting` is the upload (a
post-processor's WebP) and the one submit, `ok` or `faulted`. A form ends `dropped` when nothing
could be reported: the horde had already aborted or forgotten it, or its deadline passed first.
A form has one deadline: 3 minutes after its pop, when the horde takes it back (horde-v13-and-alchemy.md §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from horde_worker_regen.jobs.alchemy import FormLane, FormOutcome, lane_of

# A popped form expires this long after its pop (the horde's `check_interrogations` aborts it then).
FORM_TTL_S = 180.0


class FormState(Enum):
    """Where a form is in the alchemist."""

    POPPED = "popped"
    QUEUED = "queued"
    RUNNING = "running"
    REPORTING = "reporting"
    SUBMITTED = "submitted"
    FAULTED = "faulted"
    DROPPED = "dropped"

    @property
    def is_terminal(self) -> bool:
        """True for submitted, faulted and dropped."""
        return self in FORM_TERMINAL_STATES


FORM_TERMINAL_STATES = frozenset({FormState.SUBMITTED, FormState.FAULTED, FormState.DROPPED})
# A form in these states has not reached its child yet.
FORM_WAITING_STATES = frozenset({FormState.POPPED, FormState.QUEUED})

FORM_TRANSITIONS: dict[FormState, frozenset[FormState]] = {
    FormState.POPPED: frozenset({FormState.QUEUED, FormState.REPORTING, FormState.DROPPED}),
    FormState.QUEUED: frozenset({FormState.RUNNING, FormState.REPORTING, FormState.DROPPED}),
    FormState.RUNNING: frozenset({FormState.REPORTING, FormState.DROPPED}),
    FormState.REPORTING: frozenset({FormState.SUBMITTED, FormState.FAULTED, FormState.DROPPED}),
    FormState.SUBMITTED: frozenset(),
    FormState.FAULTED: frozenset(),
    FormState.DROPPED: frozenset(),
}


class InvalidFormTransition(RuntimeError):
    """A state change the machine does not allow: a bug, never an operational event."""


@dataclass
class FormRecord:
    """Everything known about one popped form; changed only by the alchemist on the event loop."""

    form_id: str
    form: str
    payload: dict[str, str]
    source: str  # the source image's URL (or inline base64)
    r2_upload: str | None  # where a post-processor's WebP goes
    popped_at: float
    ttl: float = FORM_TTL_S
    state: FormState = FormState.POPPED
    source_image: bytes = b""
    outcome: FormOutcome | None = None
    fault_reason: str | None = None
    reward: float = 0.0
    child: str | None = None  # the child running it (its name with incarnation)
    started_at: float | None = None
    entered: dict[FormState, float] = field(default_factory=dict)

    @property
    def lane(self) -> FormLane:
        """Which kind of child runs it."""
        return lane_of(self.form)

    @property
    def deadline(self) -> float:
        """When the horde takes the form back (monotonic): pop time + 3 minutes."""
        return self.popped_at + self.ttl

    def move_to(self, state: FormState, now: float) -> FormState:
        """Change state if the machine allows it; returns the previous state."""
        if state not in FORM_TRANSITIONS[self.state]:
            raise InvalidFormTransition(f"form {self.form_id}: {self.state.value} → {state.value} is not allowed")
        previous, self.state = self.state, state
        self.entered[state] = now
        return previous
