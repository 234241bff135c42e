"""A clock that moves only while the code under test waits: deadlines are reached in no real time."""

from __future__ import annotations


class SleepingClock:
    """`clock` and `sleep` for a `Submitter`: each wait advances the clock by exactly its length."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.delays: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert delay >= 0, f"a negative wait ({delay})"
        self.delays.append(delay)
        self.now += delay
