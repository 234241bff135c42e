"""The dashboard's history: a bounded ring of samples of the worker's figures over the last 24 hours.

One `Sample` every `interval_s` (30 s by default) holds the figures the charts draw: kudos/hr,
images/min, MPS/s, slot duty (the mean and each slot's), faults in the interval, queue depth and
kudos per kWh (None until GPU power is measured). The ring is bounded twice, by count and by age,
so a worker serving for weeks holds at most a day of points. Samples are kept in time order (unix
seconds): one older than the newest (the system clock was set back) replaces the newer ones, since
they now lie in the future. `/history.json` serves the ring; a sample is also a `history_sample`
record of the event log, from which `record_sample` reads it back after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from horde_worker_regen.shared.numbers import finite

DEFAULT_INTERVAL_S = 30.0
MAX_AGE_S = 24 * 3600.0
MAX_POINTS = int(MAX_AGE_S / DEFAULT_INTERVAL_S)  # 2880: a day at the default interval
# The series, in the order the page draws them.
SERIES = (
    "kudos_per_hour",
    "images_per_minute",
    "megapixelsteps_per_second",
    "slot_duty",
    "faults",
    "queue_depth",
    "kudos_per_kwh",
)
SAMPLE_KIND: Final = "history_sample"


@dataclass(frozen=True)
class Sample:
    """The figures at one moment: `t` in unix seconds; a value is None when it was not measured."""

    t: float
    values: Mapping[str, float | None]
    slot_duty: tuple[float, ...] = field(default=())  # each slot's duty, by slot index

    def fields(self) -> dict[str, Any]:
        """The sample as the fields of a `history_sample` event (plain JSON)."""
        return {"t": self.t, **{name: self.values.get(name) for name in SERIES}, "slots": list(self.slot_duty)}


class HistoryRing:
    """The last `max_points` samples of at most `max_age_s` seconds, oldest first."""

    def __init__(
        self, interval_s: float = DEFAULT_INTERVAL_S, max_points: int = MAX_POINTS, max_age_s: float = MAX_AGE_S
    ) -> None:
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self._samples: deque[Sample] = deque(maxlen=max_points)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def max_points(self) -> int:
        """The most samples kept."""
        return self._samples.maxlen or 0

    def add(self, sample: Sample) -> None:
        """Keep `sample` as the newest; drop what is newer (a clock set back) or older than the age bound."""
        while self._samples and self._samples[-1].t >= sample.t:
            self._samples.pop()
        self._samples.append(sample)
        horizon = sample.t - self.max_age_s
        while self._samples and self._samples[0].t < horizon:  # empty only with max_points 0
            self._samples.popleft()

    def extend(self, samples: Iterable[Sample]) -> None:
        """Add samples in time order (those read back from a previous run)."""
        for sample in sorted(samples, key=lambda s: s.t):
            self.add(sample)

    def since(self, t: float | None = None) -> list[Sample]:
        """The samples newer than `t` (all of them for None), oldest first."""
        newer: list[Sample] = []
        for sample in reversed(self._samples):
            if t is not None and sample.t <= t:
                break
            newer.append(sample)
        newer.reverse()
        return newer

    def as_json(self, since: float | None = None) -> dict[str, Any]:
        """`/history.json`: each series as [[t, value], ...], and each slot's duty under `slot_duty_by_slot`."""
        samples = self.since(since)
        by_slot: dict[str, list[list[float]]] = {}
        for sample in samples:
            for index, duty in enumerate(sample.slot_duty):
                by_slot.setdefault(str(index), []).append([sample.t, duty])
        return {
            "interval_s": self.interval_s,
            "series": {name: [[s.t, s.values.get(name)] for s in samples] for name in SERIES},
            "slot_duty_by_slot": by_slot,
        }


def record_sample(record: Mapping[str, Any]) -> Sample | None:
    """The sample a `history_sample` record holds, or None for any other record or a malformed one."""
    if record.get("kind") != SAMPLE_KIND:
        return None
    t = finite(record.get("t"))
    if t is None:
        return None
    values = {name: finite(record.get(name)) for name in SERIES}
    slots = record.get("slots")
    duties = tuple(d for d in (finite(item) for item in slots) if d is not None) if isinstance(slots, list) else ()
    return Sample(t, values, duties)
