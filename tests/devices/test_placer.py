"""The placer counts each job's post-processors beside its model, the running jobs' included."""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.devices.discovery import DeviceInfo
from horde_worker_regen.devices.model_sizes import POST_PROCESSOR_MB, ModelSizes
from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.scheduling.memory import Placement

GPU = DeviceInfo(0, "Test GPU", 12_000, 12_000)
REPORT = DeviceReport(0, "Test GPU", 12_000, 12_000)  # as its children measured it when they came up
SIZES = ModelSizes({"SD15": 3_000}, 8_000, dict(POST_PROCESSOR_MB))
PIXELS = 512 * 512


@dataclass
class SlotDouble:
    """A slot as placement sees it (the pipeline's `Slot` plays this part in the worker)."""

    index: int
    idle: bool
    model: str | None = None
    device: DeviceReport | None = REPORT


def test_a_running_jobs_heavy_post_processor_holds_gpu_memory_until_it_ends() -> None:
    placer = DevicePlacer([SlotPlan(GPU), SlotPlan(GPU)], SIZES)
    slots = [SlotDouble(0, idle=False, model="SD15"), SlotDouble(1, idle=True)]
    running = {0: ("4xNomos2_hq_dat2",)}  # 3000 + 4000 MB held on the 12000 MB card: 5000 left
    assert POST_PROCESSOR_MB["4xNomos2_hq_dat2"] == 4_000 and POST_PROCESSOR_MB["RestoreFormer"] == 2_500
    assert placer.place("SD15", PIXELS, slots, [], running=running) == Placement(slot=1)
    with_restorer = placer.place("SD15", PIXELS, slots, [], post_processing=("RestoreFormer",), running=running)
    assert with_restorer == Placement()  # 3000 + 2500 > 5000: it waits for the upscaling job to end
    # Without the running job's post-processor it would have fitted: that memory is what made it wait.
    assert placer.place("SD15", PIXELS, slots, [], post_processing=("RestoreFormer",)) == Placement(slot=1)


def test_a_job_whose_post_processing_exceeds_the_card_runs_alone_relying_on_offloading() -> None:
    small = DeviceInfo(0, "Small GPU", 6_000, 6_000)
    report = DeviceReport(0, "Small GPU", 6_000, 6_000)
    placer = DevicePlacer([SlotPlan(small), SlotPlan(small)], SIZES)
    slots = [SlotDouble(0, idle=True, device=report), SlotDouble(1, idle=True, device=report)]
    assert placer.place("SD15", PIXELS, slots, [], post_processing=("4xNomos2_hq_dat2",)) == Placement(
        slot=0, oversize=True
    )
    busy = [SlotDouble(0, idle=False, model="SD15", device=report), SlotDouble(1, idle=True, device=report)]
    assert placer.place("SD15", PIXELS, busy, [], post_processing=("4xNomos2_hq_dat2",)) == Placement()
