"""The benchmark's decisions, as pure functions: which setting to try next, when to stop, what to recommend.

A *setting* is one (image size, n_iter, max_threads) combination; its *measurement* is what a block of
jobs at that setting gave. The ramp goes one dimension at a time: size (n_iter 1, one thread), then
n_iter at the best size, then threads. A dimension stops growing when throughput (megapixel-steps per
second) no longer improves by `min_gain`, when memory ran close to the machine's limit, when one job
took longer than the time limit, or when the next setting is known not to fit (a bigger size than the
horde would time out at). The horde-side figures used here are those of horde-api.md: a job's ttl is
`30 + steps * 2 * pixels / 262144` seconds (at least 150, x3 for an extra-slow worker), a worker under
0.5 MPS/s misses requests that ask for fast workers, and `extra_slow_worker` is meant for < 0.1 MPS/s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PIXELS_PER_POWER = 8 * 64 * 64  # max_power x this = the largest image, in pixels
SIZES = (64, 128, 256, 512, 768, 1024)  # square sides tried, smallest first
BATCHES = (1, 2, 4, 8)
MIN_TTL_S = 150
EXTRA_SLOW_TTL_FACTOR = 3
EXTRA_SLOW_MPS = 0.1  # below this, extra_slow_worker (horde-api.md)
TTL_MARGIN = 0.5  # a job should take at most this share of its ttl
TYPICAL_STEPS = 30  # what a real request usually asks for; the projections use it
DEFAULT_MIN_GAIN = 0.05
DEFAULT_MEMORY_LIMIT = 0.9  # share of the machine's RAM (or the GPU's VRAM) a setting may reach
QUICK_JOB_S = 2.0  # below this a pop round-trip is a visible share of a job: queue one more


@dataclass(frozen=True)
class Setting:
    """One combination the benchmark measures."""

    size: int
    n_iter: int = 1
    threads: int = 1

    @property
    def max_power(self) -> int:
        """The smallest max_power that accepts this size."""
        return max_power_for(self.size)


@dataclass(frozen=True)
class Measurement:
    """What a block at one setting gave."""

    setting: Setting
    steps: int
    jobs: int
    seconds: float  # first pop to last submit
    kudos: float
    peak_ram_bytes: int
    peak_vram_bytes: int | None = None

    @property
    def images(self) -> int:
        """Images in the block."""
        return self.jobs * self.setting.n_iter

    @property
    def mps_per_s(self) -> float:
        """Megapixel-steps per second."""
        return self.images * self.setting.size**2 * self.steps / 1_000_000 / self.seconds

    @property
    def jobs_per_hour(self) -> float:
        """Jobs per hour (one job is n_iter images)."""
        return self.jobs * 3600 / self.seconds

    @property
    def kudos_per_hour(self) -> float:
        """Kudos per hour at the local horde's rewards."""
        return self.kudos * 3600 / self.seconds

    @property
    def seconds_per_job(self) -> float:
        """Mean seconds per job, threads overlapping."""
        return self.seconds * self.setting.threads / self.jobs


@dataclass(frozen=True)
class Limits:
    """What ends a dimension of the ramp."""

    total_ram_bytes: int
    total_vram_bytes: int | None = None
    memory_limit: float = DEFAULT_MEMORY_LIMIT
    min_gain: float = DEFAULT_MIN_GAIN
    max_job_seconds: float = 600.0


@dataclass(frozen=True)
class Recommendation:
    """One bridgeData key, its value and why."""

    key: str
    value: int | bool
    reason: str


def max_power_for(size: int) -> int:
    """The smallest max_power whose pixel limit admits a `size` x `size` image."""
    return max(1, math.ceil(size * size / PIXELS_PER_POWER))


def job_ttl(size: int, steps: int, extra_slow: bool = False) -> float:
    """The horde's ttl of one job of that size and steps (k_euler), in seconds."""
    ttl = max(30 + steps * 2 * size * size / 262144, MIN_TTL_S)
    return ttl * (EXTRA_SLOW_TTL_FACTOR if extra_slow else 1)


def projected_job_seconds(mps_per_s: float, size: int, n_iter: int = 1, steps: int = TYPICAL_STEPS) -> float:
    """How long a job of `steps` steps would take at that speed."""
    return size * size * steps * n_iter / 1_000_000 / mps_per_s


def memory_exhausted(measurement: Measurement, limits: Limits) -> bool:
    """Whether the setting brought RAM (or VRAM, where known) to the limit share of the machine's."""
    if measurement.peak_ram_bytes >= limits.memory_limit * limits.total_ram_bytes:
        return True
    vram, total = measurement.peak_vram_bytes, limits.total_vram_bytes
    return vram is not None and total is not None and vram >= limits.memory_limit * total


def stop_reason(history: Sequence[Measurement], limits: Limits) -> str | None:
    """Why the dimension whose measurements are `history` (in ramp order) should not grow, or None."""
    latest = history[-1]
    if memory_exhausted(latest, limits):
        return f"memory reached {limits.memory_limit:.0%} of the machine's"
    if latest.seconds_per_job > limits.max_job_seconds:
        return f"a job took {latest.seconds_per_job:.0f}s, over the {limits.max_job_seconds:.0f}s limit"
    if len(history) > 1:
        best_before = max(m.mps_per_s for m in history[:-1])
        if latest.mps_per_s < best_before * (1 + limits.min_gain):
            return f"throughput {latest.mps_per_s:.3g} MPS/s is not {limits.min_gain:.0%} over {best_before:.3g}"
    return None


def best(history: Sequence[Measurement], limits: Limits) -> Measurement:
    """The fastest setting that stayed within memory (the first one if none did)."""
    fitting = [m for m in history if not memory_exhausted(m, limits)] or list(history[:1])
    return max(fitting, key=lambda m: m.mps_per_s)


def too_slow_for(size: int, history: Sequence[Measurement]) -> str | None:
    """Why `size` is not worth measuring at the latest speed (its typical job would not fit its ttl), or None."""
    if not history:
        return None
    speed = history[-1].mps_per_s
    job_s, ttl = projected_job_seconds(speed, size), job_ttl(size, TYPICAL_STEPS, extra_slow=True)
    if job_s <= TTL_MARGIN * ttl:
        return None
    return (
        f"a {TYPICAL_STEPS}-step {size}x{size} job would take about {job_s:.0f}s at {speed:.3g} MPS/s, over "
        f"{TTL_MARGIN:.0%} of its {ttl:.0f}s ttl even as an extra-slow worker"
    )


def next_size(history: Sequence[Measurement], limits: Limits, sizes: Sequence[int] = SIZES) -> int | None:
    """The next image size of `sizes` to try, or None when the size dimension is done."""
    if history and stop_reason(history, limits) is not None:
        return None
    tried = {m.setting.size for m in history}
    remaining = [size for size in sizes if size not in tried]
    if not remaining or too_slow_for(remaining[0], history) is not None:
        return None
    return remaining[0]


def next_in(options: Sequence[int], tried: Sequence[Measurement], value_of: str, limits: Limits) -> int | None:
    """The next n_iter or thread count (`value_of` names the Setting field) to try, or None."""
    if tried and stop_reason(tried, limits) is not None:
        return None
    done = {getattr(m.setting, value_of) for m in tried}
    remaining = [option for option in options if option not in done]
    return remaining[0] if remaining else None


def recommend_power(sizes: Sequence[Measurement], limits: Limits) -> Recommendation:
    """max_power: the largest size measured within memory whose typical job fits well inside its ttl."""
    fitting = [m for m in sizes if not memory_exhausted(m, limits)] or list(sizes[:1])
    extra_slow = best(sizes, limits).mps_per_s < EXTRA_SLOW_MPS

    def fits(m: Measurement) -> bool:
        job_s = projected_job_seconds(m.mps_per_s, m.setting.size)
        return job_s <= TTL_MARGIN * job_ttl(m.setting.size, TYPICAL_STEPS, extra_slow)

    fits_ttl = [m for m in fitting if fits(m)]
    chosen = max(fits_ttl or fitting[:1], key=lambda m: m.setting.size)
    job_s = projected_job_seconds(chosen.mps_per_s, chosen.setting.size)
    ttl = job_ttl(chosen.setting.size, TYPICAL_STEPS, extra_slow)
    side = f"{chosen.setting.size}x{chosen.setting.size}"
    if not fits_ttl:
        return Recommendation(
            "max_power",
            1,
            (
                f"the smallest value the horde takes, because even a {TYPICAL_STEPS}-step {side} job takes about "
                f"{job_s:.0f}s at {chosen.mps_per_s:.3g} MPS/s, over {TTL_MARGIN:.0%} of its {ttl:.0f}s ttl; "
                "fewer steps (limit_max_steps) or faster hardware would help more"
            ),
        )
    return Recommendation(
        "max_power",
        chosen.setting.max_power,
        (
            f"the smallest value that covers {side}, the largest size measured that fits in memory and whose "
            f"{TYPICAL_STEPS}-step job ({job_s:.0f}s at {chosen.mps_per_s:.3g} MPS/s) takes at most "
            f"{TTL_MARGIN:.0%} of its {ttl:.0f}s ttl"
        ),
    )


def recommend_batch(batches: Sequence[Measurement], power: int, limits: Limits) -> Recommendation:
    """max_batch: the n_iter with the best throughput, as long as such a batch at max_power fits its ttl."""
    chosen = best(batches, limits)
    side = math.isqrt(power * PIXELS_PER_POWER)
    fitting = [m for m in batches if not memory_exhausted(m, limits) and m.mps_per_s >= chosen.mps_per_s
               and projected_job_seconds(m.mps_per_s, side, m.setting.n_iter) <= TTL_MARGIN * job_ttl(
                   side, TYPICAL_STEPS, chosen.mps_per_s < EXTRA_SLOW_MPS)]  # fmt: skip
    value = min((m.setting.n_iter for m in fitting), default=1)
    figures = ", ".join(f"{m.setting.n_iter}: {m.mps_per_s:.3g}" for m in batches)
    return Recommendation(
        "max_batch",
        value,
        (f"MPS/s by n_iter ({figures}); n_iter {value} is the fastest whose batch at max_power fits its ttl"),
    )


def recommend_threads(threads: Sequence[Measurement], limits: Limits) -> Recommendation:
    """max_threads: the thread count with the best throughput within memory."""
    chosen = best(threads, limits)
    figures = ", ".join(f"{m.setting.threads}: {m.mps_per_s:.3g}" for m in threads)
    return Recommendation(
        "max_threads",
        chosen.setting.threads,
        f"MPS/s by thread count ({figures}); more threads gave no more or ran out of memory",
    )


def recommend_queue(chosen: Measurement, power: int) -> Recommendation:
    """queue_size: 1 unless a typical job at max_power is so short that a pop round-trip shows between jobs."""
    side = math.isqrt(power * PIXELS_PER_POWER)
    job_s = projected_job_seconds(chosen.mps_per_s, side)
    if job_s < QUICK_JOB_S:
        return Recommendation(
            "queue_size",
            2,
            (
                f"a {TYPICAL_STEPS}-step {side}x{side} job takes about {job_s:.1f}s, so a second queued job hides the "
                "pop round-trip"
            ),
        )
    return Recommendation(
        "queue_size",
        1,
        (
            f"a {TYPICAL_STEPS}-step {side}x{side} job takes about {job_s:.1f}s, far longer than a pop: one queued job "
            "keeps every slot busy without holding jobs other workers could start sooner"
        ),
    )


def recommend_slow(chosen: Measurement) -> Recommendation:
    """extra_slow_worker: only below 0.1 MPS/s (horde-api.md)."""
    slow = chosen.mps_per_s < EXTRA_SLOW_MPS
    return Recommendation(
        "extra_slow_worker",
        slow,
        (
            f"{chosen.mps_per_s:.3g} MPS/s is {'below' if slow else 'at or above'} the horde's {EXTRA_SLOW_MPS} MPS/s "
            "mark for extra-slow workers"
        ),
    )


def recommend(
    sizes: Sequence[Measurement], batches: Sequence[Measurement], threads: Sequence[Measurement], limits: Limits
) -> list[Recommendation]:
    """Every recommendation, from the three dimensions' measurements (batches and threads may be empty)."""
    power = recommend_power(sizes, limits)
    power_value = int(power.value)
    overall = best([*sizes, *batches, *threads], limits)
    return [
        power,
        recommend_batch(batches or sizes[:1], power_value, limits),
        recommend_threads(threads or sizes[:1], limits),
        recommend_queue(overall, power_value),
        recommend_slow(overall),
    ]
