"""Per-source failure backoff: after a source fails, jobs skip it for a growing while.

Without it every job asking for a LoRA from an unreachable CivitAI would wait out the full download
timeout. A source (a host) that failed is skipped for `base · 2^(failures-1)` seconds (at most
`cap`); one success clears it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

BASE_S = 30.0
CAP_S = 15 * 60.0


@dataclass
class SourceBackoff:
    """Failure counts and retry times per source."""

    base: float = BASE_S
    cap: float = CAP_S
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _retry_at: dict[str, float] = field(default_factory=dict)

    def blocked_for(self, source: str) -> float:
        """Seconds until `source` may be tried again (0: try it now)."""
        return max(0.0, self._retry_at.get(source, 0.0) - self.clock())

    def failed(self, source: str) -> float:
        """Count a failure; returns how long the source is now skipped."""
        count = self._failures.get(source, 0) + 1
        self._failures[source] = count
        delay = min(self.cap, self.base * 2.0 ** (count - 1))
        self._retry_at[source] = self.clock() + delay
        return delay

    def succeeded(self, source: str) -> None:
        """The source works again."""
        self._failures.pop(source, None)
        self._retry_at.pop(source, None)
