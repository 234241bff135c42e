"""Placement by device memory, per-device model lists and max pixels: pure policy, no processes."""

from __future__ import annotations

from horde_worker_regen.scheduling.memory import (
    DEFAULT_MODEL_MB,
    WORKING_MEMORY_MB,
    JobNeeds,
    Placement,
    SeatView,
    estimate_model_mb,
    place_job,
)

SIZES = {"small": 3_000, "mid": 6_000, "big": 12_000, "huge": 20_000}
CAPACITY: dict[int | None, int] = {0: 16_000, 1: 4_000, 2: 8_000}
PIXELS = 512 * 512


def _place(model: str, seats: list[SeatView], queued: tuple[str, ...] = (), pixels: int = PIXELS) -> Placement:
    return place_job(
        JobNeeds(model, pixels), seats, capacity_mb=CAPACITY, sizes=SIZES, default_mb=8_000, queued_models=queued
    )


def test_a_model_goes_only_to_a_device_large_enough() -> None:
    seats = [SeatView(0, 1, idle=True), SeatView(1, 2, idle=True), SeatView(2, 0, idle=True)]
    assert _place("big", seats) == Placement(slot=2)
    assert _place("mid", seats) == Placement(slot=1)
    assert _place("small", seats) == Placement(slot=0)


def test_a_job_waits_while_busy_slots_of_its_device_hold_the_memory() -> None:
    # GPU 2 has 8000 MB; its other slot is running a 6000 MB model: a second one does not fit now.
    seats = [SeatView(0, 2, idle=False, model="mid"), SeatView(1, 2, idle=True)]
    assert _place("mid", seats) == Placement()
    assert _place("small", [SeatView(0, 2, idle=False, model="small"), SeatView(1, 2, idle=True)]).slot == 1
    # Once the busy slot is done, the job starts.
    assert _place("mid", [SeatView(0, 2, idle=True, model="mid"), SeatView(1, 2, idle=True)]).slot == 0


def test_an_idle_slots_model_does_not_block_a_load() -> None:
    seats = [SeatView(0, 2, idle=True, model="mid"), SeatView(1, 2, idle=True, model="small")]
    assert _place("mid", seats).slot == 0


def test_a_model_larger_than_every_device_runs_alone_on_the_largest_relying_on_offloading() -> None:
    # An 8 GB card serving SDXL, a 16 GB one serving Flux: the estimate is rough and the backend offloads,
    # so the job is not refused; it runs on the largest device that has no other job running.
    placement = _place("huge", [SeatView(0, 1, idle=True), SeatView(1, 2, idle=True)])
    assert placement == Placement(slot=1, oversize=True)
    # A device with another job running makes it wait (the memory may free), never fault.
    busy = [SeatView(0, 1, idle=True), SeatView(1, 2, idle=True), SeatView(2, 2, idle=False, model="small")]
    assert _place("huge", busy) == Placement(slot=0, oversize=True)
    assert _place("huge", busy[1:]) == Placement()
    assert _place("huge", [SeatView(1, 2, idle=True), SeatView(2, 2, idle=True, model="small")]).slot == 1


def test_per_device_model_lists_restrict_the_slots() -> None:
    seats = [SeatView(0, 1, idle=True, allowed_models=frozenset({"small"})), SeatView(1, 0, idle=False, model="x")]
    assert _place("mid", seats) == Placement()  # GPU 0 may run it, once its slot is free
    assert _place("small", seats).slot == 0
    only_small = [SeatView(0, 1, idle=True, allowed_models=frozenset({"small"}))]
    never = _place("mid", only_small).never
    assert never is not None and "models_to_load" in never


def test_a_busy_device_that_could_fit_it_later_makes_the_job_wait_not_fault() -> None:
    seats = [SeatView(0, 0, idle=False, model="small"), SeatView(1, 1, idle=True)]
    assert _place("big", seats) == Placement()


def test_max_pixels_per_device() -> None:
    seats = [SeatView(0, 1, idle=True, max_pixels=PIXELS), SeatView(1, 0, idle=True)]
    assert _place("small", seats, pixels=PIXELS * 4).slot == 1
    assert _place("small", seats[:1], pixels=PIXELS * 4).never is not None


def test_residency_preferences_hold_among_fitting_slots() -> None:
    seats = [
        SeatView(0, 0, idle=True, model="small"),
        SeatView(1, 0, idle=True, model="mid"),
        SeatView(2, 0, idle=True),
    ]
    assert _place("mid", seats).slot == 1  # already holds it
    assert _place("big", seats).slot == 2  # an empty slot before evicting anything
    assert _place("big", seats[:2], queued=("small",)).slot == 1  # evict what the queue needs least


def test_cpu_slots_use_the_ram_figure() -> None:
    seats = [SeatView(0, None, idle=True)]
    fits = place_job(JobNeeds("mid", PIXELS), seats, capacity_mb={None: 7_000}, sizes=SIZES, default_mb=0)
    assert fits.slot == 0
    waits = place_job(
        JobNeeds("mid", PIXELS), seats, capacity_mb={None: 5_000}, sizes=SIZES, default_mb=0, ceiling_mb={None: 32_000}
    )
    assert waits == Placement()


def test_model_estimates_use_the_file_size_else_the_baseline_default() -> None:
    assert estimate_model_mb("stable_diffusion_xl", 6_938_040_682) == 6_616 + WORKING_MEMORY_MB
    assert estimate_model_mb("stable_diffusion_xl", None) == DEFAULT_MODEL_MB["stable_diffusion_xl"]
    assert estimate_model_mb("something new", None) == 8_000
