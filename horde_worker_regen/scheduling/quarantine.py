"""Poison-model quarantine: a model whose jobs kill every inference process they run on is set aside.

A strike is one job of the model that used up its retries with every process it ran on lost (each
retry runs on a fresh process, so a strike is already several processes). `strikes` strikes with no
job of the model succeeding in between quarantine it: it is no longer offered to the horde until the
worker restarts, so one bad checkpoint cannot take the whole worker down in a loop.
"""

from __future__ import annotations

from collections import Counter


class ModelQuarantine:
    """Strike counts per model and the models quarantined."""

    def __init__(self, strikes: int) -> None:
        self._limit = strikes
        self._strikes: Counter[str] = Counter()
        self.quarantined: set[str] = set()

    def strike(self, model: str) -> bool:
        """Count a strike; True when this one quarantines the model."""
        if model in self.quarantined:
            return False
        self._strikes[model] += 1
        if self._strikes[model] < self._limit:
            return False
        self.quarantined.add(model)
        return True

    def strikes_of(self, model: str) -> int:
        """Strikes counted since the model's last success."""
        return self._strikes[model]

    def succeeded(self, model: str) -> None:
        """A job of the model succeeded: its strikes start again from zero."""
        self._strikes.pop(model, None)

    def allowed(self, models: list[str]) -> list[str]:
        """`models` without the quarantined ones, in the same order."""
        return [model for model in models if model not in self.quarantined]
