"""Per-model image counts for `GET /v2/stats/img/models` (seedable, then counted at submit)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

DAY_S = 24 * 3600
MONTH_S = 30 * DAY_S


@dataclass
class ModelStats:
    """Seeded day/month/total counts plus every image generated since start."""

    seed_day: dict[str, int] = field(default_factory=dict)
    seed_month: dict[str, int] = field(default_factory=dict)
    seed_total: dict[str, int] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)

    def record(self, model: str, when: float) -> None:
        """Count one generated image."""
        self.events.append((when, model))

    def snapshot(self, now: float) -> dict[str, dict[str, int]]:
        """The endpoint's body: `{"day": {...}, "month": {...}, "total": {...}}`."""
        day, month, total = Counter(self.seed_day), Counter(self.seed_month), Counter(self.seed_total)
        for when, model in self.events:
            total[model] += 1
            if now - when <= MONTH_S:
                month[model] += 1
            if now - when <= DAY_S:
                day[model] += 1
        return {"day": dict(day), "month": dict(month), "total": dict(total)}
