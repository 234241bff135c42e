"""The fault breaker: the worker stops asking for jobs it keeps faulting, before the horde notices.

The horde counts every `faulted` submit and every ttl abort against the worker; more than 20 in an
hour put it into maintenance (horde-api.md §3.6). Every fault the worker could have avoided has a
`Cause`: its kind and its subject, a model or a feature (post-processing, LoRAs, ...). Two rules
withdraw a subject, so that no job needing it is popped any more:

- deterministic faults (a model file missing or unloadable, a feature unsupported or always failing,
  a model whose jobs kill every process they run on): `strikes` of them through the same cause, with
  no job of the subject succeeding in between;
- a rolling-hour cap, whatever the kind: `cap` faulted ids through one cause within `window_s`.

A withdrawal ends after `cooldown_s` (None: only when the worker restarts). Until then, two limits keep
pop-ahead from outrunning the rules: a subject is offered only while the ids already held for it plus
one more batch fit in what its busiest cause may still fault this hour (`room`), and a subject with a
deterministic fault and no verdict yet (`suspect`) holds one job at a time, the one that settles it.

Pure: no I/O, the clock is passed in; the pipeline owns one breaker and asks it before every pop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from horde_worker_regen.jobs.pop_flags import FEATURE_FLAGS
from horde_worker_regen.jobs.spec import FailureKind, Feature, GenerationSpec

CauseKind = FailureKind | Literal["crashing_model"]
DETERMINISTIC_KINDS: frozenset[str] = frozenset(
    {"missing_model", "unloadable_model", "crashing_model", "unsupported_feature", "failing_feature"}
)
FEATURE_KINDS: frozenset[str] = frozenset({"unsupported_feature", "failing_feature"})
PAINTING = frozenset({"inpainting", "outpainting"})
HOUR_S = 3600.0


@dataclass(frozen=True)
class Subject:
    """What a fault is about: a model (by name) or a feature (a key of `FEATURE_FLAGS`)."""

    name: str
    feature: bool = False

    def describe(self, *, capital: bool = False) -> str:
        """`model 'Deliberate'` or `feature 'post_processing'` (`Model ...` at the start of a sentence)."""
        what = "feature" if self.feature else "model"
        return f"{what.capitalize() if capital else what} '{self.name}'"


@dataclass(frozen=True)
class Cause:
    """One cause of faults: its kind and its subject; the rolling cap counts per cause."""

    kind: CauseKind
    subject: Subject

    @classmethod
    def of(cls, kind: CauseKind, subject: str) -> Cause:
        """A cause whose subject is a feature for the feature kinds, else a model."""
        return cls(kind, Subject(subject, feature=kind in FEATURE_KINDS))

    @property
    def deterministic(self) -> bool:
        """Every job needing the subject would fail the same way."""
        return self.kind in DETERMINISTIC_KINDS


@dataclass(frozen=True)
class Withdrawal:
    """A subject no longer offered: why, since when, until when (None: until the worker restarts)."""

    cause: Cause
    faults: int  # the strikes (deterministic) or the ids faulted within the hour (rolling cap)
    by_cap: bool
    reason: str  # the last fault's reason
    since: float
    until: float | None


@dataclass(frozen=True)
class BreakerSettings:
    """The rules' figures; `cooldown_s` None keeps a withdrawal until the worker restarts."""

    cooldown_s: float | None = HOUR_S
    strikes: int = 2
    crash_strikes: int = 2  # quarantine_model_after_strikes: crashes are already several processes each
    cap: int = 10
    window_s: float = HOUR_S
    batch: int = 1  # the most ids one pop can bring (max_batch)

    @classmethod
    def from_minutes(cls, cooldown_minutes: int, crash_strikes: int, batch: int) -> BreakerSettings:
        """From the bridgeData keys: `fault_breaker_cooldown` (0: until restart), the quarantine strikes."""
        cooldown = cooldown_minutes * 60.0 if cooldown_minutes > 0 else None
        return cls(cooldown_s=cooldown, crash_strikes=crash_strikes, batch=batch)


@dataclass
class FaultBreaker:
    """Strikes and rolling windows per cause, and the subjects withdrawn."""

    settings: BreakerSettings = field(default_factory=BreakerSettings)
    withdrawn: dict[Subject, Withdrawal] = field(default_factory=dict)
    _strikes: Counter[Cause] = field(default_factory=Counter)
    _windows: dict[Cause, deque[tuple[float, int]]] = field(default_factory=dict)

    def record(self, cause: Cause, reason: str, now: float, ids: int = 1) -> Withdrawal | None:
        """Count a fault of `ids` ids; the withdrawal it starts, if any (each is returned once)."""
        window = self._windows.setdefault(cause, deque())
        window.append((now, ids))
        self._prune(now)
        if cause.subject in self.withdrawn:
            return None  # already withdrawn: its held jobs ending, counted but starting nothing new
        if cause.deterministic:
            self._strikes[cause] += 1
            if self._strikes[cause] >= self.limit_of(cause):
                return self._withdraw(cause, self._strikes[cause], False, reason, now)
        faulted = self._faulted(cause)
        if faulted >= self.settings.cap:
            return self._withdraw(cause, faulted, True, reason, now)
        return None

    def limit_of(self, cause: Cause) -> int:
        """The strikes that withdraw a subject through a deterministic `cause`."""
        return self.settings.crash_strikes if cause.kind == "crashing_model" else self.settings.strikes

    def _withdraw(self, cause: Cause, faults: int, by_cap: bool, reason: str, now: float) -> Withdrawal:
        cooldown = self.settings.cooldown_s
        until = None if cooldown is None else now + cooldown
        withdrawal = Withdrawal(cause, faults, by_cap, reason, now, until)
        self.withdrawn[cause.subject] = withdrawal
        return withdrawal

    def succeeded(self, subjects: Iterable[Subject]) -> None:
        """A job needing these subjects succeeded: their deterministic strikes start again from zero."""
        done = set(subjects)
        for cause in [cause for cause in self._strikes if cause.subject in done]:
            del self._strikes[cause]

    def reinstate(self, now: float) -> list[Withdrawal]:
        """End the withdrawals whose cool-down has passed (strikes start again); those ended."""
        ended = [w for w in self.withdrawn.values() if w.until is not None and w.until <= now]
        for withdrawal in ended:
            del self.withdrawn[withdrawal.cause.subject]
            self.succeeded([withdrawal.cause.subject])
        return ended

    def strikes_of(self, cause: Cause) -> int:
        """Deterministic faults through `cause` since the subject's last success."""
        return self._strikes[cause]

    def suspect(self, subject: Subject) -> bool:
        """A deterministic fault of the subject is counted and no verdict is in yet."""
        return subject not in self.withdrawn and any(c.subject == subject for c in self._strikes)

    def room(self, subject: Subject, now: float) -> int:
        """Ids the subject's busiest cause may still fault within the rolling hour."""
        self._prune(now)
        busiest = max((self._faulted(c) for c in self._windows if c.subject == subject), default=0)
        return max(0, self.settings.cap - busiest)

    def offerable(self, subject: Subject, held_ids: int, now: float) -> bool:
        """Whether one more job needing `subject` may be popped, with `held_ids` ids of it held already."""
        if subject in self.withdrawn:
            return False
        if self.suspect(subject) and held_ids > 0:
            return False  # the job held settles whether the subject is broken
        return held_ids + min(self.settings.batch, self.settings.cap) <= self.room(subject, now)

    def next_change(self, now: float) -> float | None:
        """Seconds until a withdrawal ends or a fault leaves the rolling hour (None: nothing pending)."""
        self._prune(now)
        times = [w.until for w in self.withdrawn.values() if w.until is not None]
        times += [window[0][0] + self.settings.window_s for window in self._windows.values() if window]
        return max(0.0, min(times) - now) if times else None

    def _faulted(self, cause: Cause) -> int:
        return sum(ids for _, ids in self._windows.get(cause, ()))

    def _prune(self, now: float) -> None:
        for cause, window in list(self._windows.items()):
            while window and window[0][0] <= now - self.settings.window_s:
                window.popleft()
            if not window:
                del self._windows[cause]


def features_of(spec: GenerationSpec) -> frozenset[Feature]:
    """The refusable features a job needs."""
    needed: set[Feature] = set()
    if spec.post_processing:
        needed.add("post_processing")
    if spec.payload.get("loras"):
        needed.add("lora")
    if spec.payload.get("control_type"):
        needed.add("controlnet")
    if spec.source_processing == "img2img":
        needed.add("img2img")
    elif spec.source_processing in PAINTING:
        needed.add("inpainting")
    return frozenset(needed)


def subjects_of(spec: GenerationSpec) -> list[Subject]:
    """The job's model, then each feature it needs."""
    return [Subject(spec.model), *(Subject(name, feature=True) for name in sorted(features_of(spec)))]


@dataclass(frozen=True)
class PopGate:
    """What the next pop may ask for: the models to offer and the pop flags to turn off."""

    models: list[str]
    flags_off: frozenset[str]


def pop_gate(breaker: FaultBreaker, models: list[str], held_ids: Mapping[Subject, int], now: float) -> PopGate:
    """The models still offerable (in the given order) and the flags of the features refused."""
    offered = [m for m in models if breaker.offerable(Subject(m), held_ids.get(Subject(m), 0), now)]
    refused = [
        name for name in FEATURE_FLAGS
        if not breaker.offerable(Subject(name, feature=True), held_ids.get(Subject(name, feature=True), 0), now)
    ]  # fmt: skip
    return PopGate(offered, frozenset(flag for name in refused for flag in FEATURE_FLAGS[name]))


def blocking(breaker: FaultBreaker, spec: GenerationSpec) -> Withdrawal | None:
    """A deterministic withdrawal of a subject the job needs: it would fail the same way, so it is not run.

    A rolling-cap withdrawal is no verdict on the job (it may well succeed), so it blocks nothing.
    """
    for subject in subjects_of(spec):
        withdrawal = breaker.withdrawn.get(subject)
        if withdrawal is not None and withdrawal.cause.deterministic and not withdrawal.by_cap:
            return withdrawal
    return None


def all_withdrawn(breaker: FaultBreaker, models: list[str]) -> bool:
    """Every served model is withdrawn (not merely held back for a moment): popping has stopped."""
    return bool(models) and all(Subject(model) in breaker.withdrawn for model in models)
