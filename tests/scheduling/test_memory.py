"""Placement by device memory, per-device model lists and max pixels: pure policy, no processes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.scheduling.memory import (
    DEFAULT_MODEL_MB,
    WORKING_MEMORY_MB,
    JobNeeds,
    Placement,
    SeatView,
    estimate_model_mb,
    place_job,
    post_processing_mb,
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


# --- post-processors: their working memory counts beside the model ----------------------------------

HEAVY = {"4xNomos8kSC": 3_000, "4xNomos2_hq_dat2": 4_000, "RestoreFormer": 2_500, "CodeFormers": 1_500}


def _needs(model: str, *post_processors: str) -> JobNeeds:
    return JobNeeds(model, PIXELS, post_processing_mb(post_processors, HEAVY))


def _place_needs(job: JobNeeds, seats: list[SeatView]) -> Placement:
    return place_job(job, seats, capacity_mb=CAPACITY, sizes=SIZES, default_mb=8_000)


def test_a_job_with_post_processors_needs_its_model_and_the_largest_of_them() -> None:
    assert post_processing_mb(("RestoreFormer", "4xNomos8kSC", "CodeFormers"), HEAVY) == 3_000  # one at a time
    assert post_processing_mb((), HEAVY) == 0
    assert post_processing_mb(("strip_background",), {}) == 0  # no figure: nothing extra (the fake backend)
    # "mid" alone fits GPU 2 (8000 MB); with a heavy upscaler (6000 + 3000) only GPU 0 (16000 MB) holds it.
    seats = [SeatView(0, 2, idle=True), SeatView(1, 0, idle=True)]
    assert _place_needs(_needs("mid"), seats).slot == 0
    assert _place_needs(_needs("mid", "4xNomos8kSC"), seats).slot == 1


def test_a_busy_slot_holds_its_jobs_post_processing_memory_too() -> None:
    # GPU 0 (16000 MB): a busy slot runs "mid" (6000) with the DAT-2 upscaler (4000): 6000 MB left.
    seats = [SeatView(0, 0, idle=False, model="mid", post_processing_mb=4_000), SeatView(1, 0, idle=True)]
    assert _place_needs(_needs("mid"), seats).slot == 1
    assert _place_needs(_needs("mid", "RestoreFormer"), seats) == Placement()
    # Counted only while it runs: once idle, its model and its post-processors hold nothing.
    idle = [SeatView(0, 0, idle=True, model="mid", post_processing_mb=4_000), SeatView(1, 0, idle=True)]
    assert _place_needs(_needs("mid", "RestoreFormer"), idle).slot == 0


seat_views = st.lists(
    st.builds(
        SeatView,
        index=st.just(0),
        device=st.sampled_from([0, 1, 2]),
        idle=st.booleans(),
        model=st.sampled_from([None, *SIZES]),
        post_processing_mb=st.sampled_from([0, *HEAVY.values()]),
    ),
    min_size=1,
    max_size=5,
).map(lambda seats: [replace(seat, index=index) for index, seat in enumerate(seats)])


@given(seat_views, st.sampled_from(sorted(SIZES)), st.lists(st.sampled_from(sorted(HEAVY)), max_size=3))
def test_a_job_placed_beside_others_fits_with_every_busy_slots_post_processing(
    seats: list[SeatView], model: str, post_processors: list[str]
) -> None:
    job = _needs(model, *post_processors)
    placement = place_job(job, seats, capacity_mb=CAPACITY, sizes=SIZES, default_mb=8_000)
    if placement.slot is None or placement.oversize:
        return
    device = seats[placement.slot].device
    held = sum(SIZES[s.model] + s.post_processing_mb for s in seats if s.device == device and not s.idle and s.model)
    assert CAPACITY[device] - held >= SIZES[model] + job.post_processing_mb
