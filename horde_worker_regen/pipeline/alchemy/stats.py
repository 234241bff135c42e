"""What the alchemist has done this run: forms by how they ended, and kudos, by form name."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from horde_worker_regen.jobs.form_record import FormRecord, FormState

_ENDS = (FormState.SUBMITTED, FormState.FAULTED, FormState.DROPPED)


@dataclass
class AlchemyStats:
    """Forms ended this run, by terminal state and form name; the kudos the horde answered, by form."""

    ended: dict[FormState, Counter[str]] = field(default_factory=lambda: {s: Counter() for s in _ENDS})
    kudos: dict[str, float] = field(default_factory=dict)

    def count(self, record: FormRecord, state: FormState, reward: float) -> None:
        """A form ended."""
        self.ended[state][record.form or "(unreadable)"] += 1
        if reward:
            self.kudos[record.form] = self.kudos.get(record.form, 0.0) + reward

    @property
    def done(self) -> int:
        """Forms submitted ok."""
        return sum(self.ended[FormState.SUBMITTED].values())

    @property
    def faulted(self) -> int:
        """Forms reported faulted."""
        return sum(self.ended[FormState.FAULTED].values())

    def snapshot(self) -> dict[str, object]:
        """Plain figures for the status line, the dashboard and the exit summary."""
        return {
            "done": self.done,
            "faulted": self.faulted,
            "dropped": sum(self.ended[FormState.DROPPED].values()),
            "by_form": {state.value: dict(counts) for state, counts in self.ended.items()},
            "kudos": round(sum(self.kudos.values()), 2),
            "kudos_by_form": {form: round(kudos, 2) for form, kudos in self.kudos.items()},
        }
