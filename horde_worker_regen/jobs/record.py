"""One record per popped job, and the explicit state machine it moves through.

```
popped → inputs_fetched → queued → running → safety → uploading → submitted
   └──────────┴──────────────┴─────────┴─────────┴──→ uploading (results are faults) → faulted
   any non-terminal state ──────────────────────────→ dropped
```

`uploading` is the reporting stage: one upload and one submit per id, or one `faulted` submit per
id when the job failed. The terminal state follows from the outcomes of the ids: `submitted` when
every id was accepted, `faulted` when the job was reported faulted, `dropped` otherwise (the horde
had already aborted or forgotten an id, or the deadline passed before it could be reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from horde_worker_regen.jobs.spec import GenerationSpec, ImageVerdict, JobInputs, SourceRefs


class PoppedBatch(Protocol):
    """What a record is made from: a parsed pop answer (`horde.pop.PoppedJob` is one)."""

    @property
    def ids(self) -> tuple[str, ...]: ...
    @property
    def upload_urls(self) -> tuple[str | None, ...]: ...
    @property
    def spec(self) -> GenerationSpec: ...
    @property
    def sources(self) -> SourceRefs: ...
    @property
    def use_nsfw_censor(self) -> bool: ...
    @property
    def ttl(self) -> int: ...


class JobState(Enum):
    """Where a job is in the pipeline."""

    POPPED = "popped"
    INPUTS_FETCHED = "inputs_fetched"
    QUEUED = "queued"
    RUNNING = "running"
    SAFETY = "safety"
    UPLOADING = "uploading"
    SUBMITTED = "submitted"
    FAULTED = "faulted"
    DROPPED = "dropped"

    @property
    def is_terminal(self) -> bool:
        """True for submitted, faulted and dropped."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUBMITTED, JobState.FAULTED, JobState.DROPPED})
# States before inference starts: a job here holds a place in the pop-ahead window.
WAITING_STATES = frozenset({JobState.POPPED, JobState.INPUTS_FETCHED, JobState.QUEUED})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.POPPED: frozenset({JobState.INPUTS_FETCHED, JobState.UPLOADING, JobState.DROPPED}),
    JobState.INPUTS_FETCHED: frozenset({JobState.QUEUED, JobState.UPLOADING, JobState.DROPPED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.UPLOADING, JobState.DROPPED}),
    # Back to QUEUED: its inference process was lost and it is retried on a fresh one.
    JobState.RUNNING: frozenset({JobState.QUEUED, JobState.SAFETY, JobState.UPLOADING, JobState.DROPPED}),
    JobState.SAFETY: frozenset({JobState.UPLOADING, JobState.DROPPED}),
    JobState.UPLOADING: frozenset({JobState.SUBMITTED, JobState.FAULTED, JobState.DROPPED}),
    JobState.SUBMITTED: frozenset(),
    JobState.FAULTED: frozenset(),
    JobState.DROPPED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A state change the machine does not allow: a bug, never an operational event."""


class IdOutcome(Enum):
    """How one id of the batch ended."""

    SUBMITTED = "submitted"  # accepted (ok, censored or csam), or already accepted (DuplicateGen)
    FAULTED = "faulted"  # reported with state "faulted": the horde re-queues it
    DROPPED = "dropped"  # not reported: the horde had aborted it, or the deadline passed


@dataclass
class IdResult:
    """The end of one id."""

    outcome: IdOutcome
    reward: float = 0.0
    reason: str = ""


@dataclass
class JobRecord:
    """Everything known about one popped job; changed only by the pipeline on the event loop."""

    ids: tuple[str, ...]
    upload_urls: tuple[str | None, ...]
    spec: GenerationSpec
    sources: SourceRefs
    use_nsfw_censor: bool
    ttl: int
    popped_at: float
    state: JobState = JobState.POPPED
    entered: dict[JobState, float] = field(default_factory=dict)
    inputs: JobInputs = field(default_factory=JobInputs)
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)
    images: tuple[bytes, ...] = ()
    verdicts: tuple[ImageVerdict, ...] = ()
    fault_reason: str | None = None
    slot: int | None = None
    slot_incarnation: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    results: dict[int, IdResult] = field(default_factory=dict)

    @classmethod
    def from_pop(cls, job: PoppedBatch, popped_at: float) -> JobRecord:
        """A fresh record for a job just popped (`popped_at` on the monotonic clock)."""
        record = cls(job.ids, job.upload_urls, job.spec, job.sources, job.use_nsfw_censor, job.ttl, popped_at)
        record.entered[JobState.POPPED] = popped_at
        return record

    @property
    def key(self) -> str:
        """The job's key in the registry and in messages: its first id."""
        return self.ids[0]

    @property
    def deadline(self) -> float:
        """When the horde starts aborting this job (monotonic): pop time + ttl."""
        return self.popped_at + self.ttl

    @property
    def megapixelsteps(self) -> float:
        """Work done for the whole batch, in megapixelsteps."""
        return self.spec.width * self.spec.height * self.spec.steps * len(self.ids) / 1e6

    def move_to(self, state: JobState, now: float) -> JobState:
        """Change state if the machine allows it; returns the previous state."""
        if state not in ALLOWED_TRANSITIONS[self.state]:
            raise InvalidTransition(f"job {self.key}: {self.state.value} → {state.value} is not allowed")
        previous, self.state = self.state, state
        self.entered[state] = now
        return previous

    def final_state(self) -> JobState:
        """The terminal state the outcomes of the ids add up to."""
        outcomes = {result.outcome for result in self.results.values()}
        if outcomes == {IdOutcome.SUBMITTED}:
            return JobState.SUBMITTED
        if self.fault_reason is not None and IdOutcome.FAULTED in outcomes:
            return JobState.FAULTED
        return JobState.DROPPED

    @property
    def reward(self) -> float:
        """Kudos the horde answered for this job's submits."""
        return sum(result.reward for result in self.results.values())
