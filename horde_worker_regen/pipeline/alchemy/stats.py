"""What the alchemist has done this run: forms by how they ended, kudos by form, the rate, the last problem.

Fed by the alchemist as each form ends; read by the status line, the dashboard, `/metrics`, the exit
summary and the `worker_stopped` record. Alchemy is paid without the bridge factor (the owner gets
each form's value), so the kudos are the submit rewards themselves. Only running totals are kept
(and the rewards of the last hour, for the rate).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from horde_worker_regen.jobs.form_record import FormRecord, FormState

_ENDS = (FormState.SUBMITTED, FormState.FAULTED, FormState.DROPPED)
KUDOS_WINDOW_S = 3600.0
UNREADABLE = "(unreadable)"  # a form whose name could not be read from its pop


@dataclass(frozen=True)
class FormProblem:
    """The last form that ended faulted or dropped: when (wall clock), which, and why."""

    at: float
    form_id: str
    form: str
    state: str  # faulted or dropped
    reason: str


@dataclass(frozen=True)
class AlchemyFigures:
    """The alchemist's totals at one moment."""

    done: int
    faulted: int
    dropped: int
    kudos: float
    kudos_per_hour: float
    by_form: dict[str, dict[str, int]]  # form -> {"done", "faulted", "dropped"}
    kudos_by_form: dict[str, float]
    last_problem: FormProblem | None

    def as_json(self) -> dict[str, Any]:
        """Plain figures (the `worker_stopped` record, /status.json)."""
        problem = self.last_problem
        return {
            "done": self.done,
            "faulted": self.faulted,
            "dropped": self.dropped,
            "kudos": round(self.kudos, 2),
            "kudos_per_hour": round(self.kudos_per_hour, 2),
            "by_form": self.by_form,
            "kudos_by_form": {form: round(kudos, 2) for form, kudos in self.kudos_by_form.items()},
            "last_problem": None if problem is None else asdict(problem),
        }


@dataclass
class AlchemyStats:
    """Forms ended this run, by terminal state and form name; the kudos the horde answered, by form."""

    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    ended: dict[FormState, Counter[str]] = field(default_factory=lambda: {s: Counter() for s in _ENDS})
    kudos: dict[str, float] = field(default_factory=dict)
    last_problem: FormProblem | None = None
    _rewards: deque[tuple[float, float]] = field(init=False, default_factory=deque)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def count(self, record: FormRecord, state: FormState, reward: float, reason: str = "") -> None:
        """A form ended (`reason`: why, when it was faulted or dropped)."""
        form = record.form or UNREADABLE
        self.ended[state][form] += 1
        if reward:
            self.kudos[form] = self.kudos.get(form, 0.0) + reward
            self._rewards.append((self.clock(), reward))
        if state is not FormState.SUBMITTED:
            why = reason or record.fault_reason or ""
            self.last_problem = FormProblem(self.wall_clock(), record.form_id, form, state.value, why)

    @property
    def done(self) -> int:
        """Forms submitted ok."""
        return sum(self.ended[FormState.SUBMITTED].values())

    @property
    def faulted(self) -> int:
        """Forms reported faulted."""
        return sum(self.ended[FormState.FAULTED].values())

    @property
    def dropped(self) -> int:
        """Forms that ended without a report (the horde took them back)."""
        return sum(self.ended[FormState.DROPPED].values())

    def kudos_per_hour(self) -> float:
        """Kudos of the last hour, scaled to an hour while the alchemist has run less than one."""
        now = self.clock()
        while self._rewards and self._rewards[0][0] < now - KUDOS_WINDOW_S:
            self._rewards.popleft()
        ran = max(now - self.started, 1e-6)
        return sum(reward for _, reward in self._rewards) * KUDOS_WINDOW_S / min(ran, KUDOS_WINDOW_S)

    def figures(self) -> AlchemyFigures:
        """The totals now."""
        forms = sorted({form for counts in self.ended.values() for form in counts} | set(self.kudos))
        by_form = {
            form: {"done": self.ended[FormState.SUBMITTED][form], "faulted": self.ended[FormState.FAULTED][form],
                   "dropped": self.ended[FormState.DROPPED][form]}
            for form in forms
        }  # fmt: skip
        return AlchemyFigures(
            done=self.done, faulted=self.faulted, dropped=self.dropped, kudos=sum(self.kudos.values()),
            kudos_per_hour=self.kudos_per_hour(), by_form=by_form, kudos_by_form=dict(self.kudos),
            last_problem=self.last_problem,
        )  # fmt: skip
