"""The bridge from the running slots to the pure placement policy (`scheduling.memory.place_job`).

It knows each slot's plan (device, model list, max pixels) by slot index, learns each GPU's memory
from the `ChildReady` of its children, and measures the RAM left for CPU slots with psutil. The
caller says which post-processors the job to place and the jobs running on busy slots use; their
working memory counts beside the models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import psutil
from loguru import logger

from horde_worker_regen.devices.model_sizes import ModelSizes
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.scheduling.memory import JobNeeds, Placement, SeatView, place_job, post_processing_mb

MB = 1024 * 1024


class PlacedSlot(Protocol):
    """What placement needs of an inference slot (the pipeline's `Slot` is one)."""

    @property
    def index(self) -> int: ...
    @property
    def idle(self) -> bool: ...
    @property
    def model(self) -> str | None: ...
    @property
    def device(self) -> DeviceReport | None: ...


class DevicePlacer:
    """Places queued jobs on slots by device memory and per-device limits."""

    def __init__(self, plans: Sequence[SlotPlan], sizes: ModelSizes) -> None:
        self._plans = list(plans)
        self._sizes = sizes
        self._gpu_capacity: dict[int | None, int] = {}
        self._told_oversize: set[str] = set()

    def device_of(self, slot_index: int) -> int | None:
        """The GPU index of a slot (None: the CPU)."""
        plan = self._plans[slot_index] if slot_index < len(self._plans) else None
        return plan.device.index if plan is not None and plan.device is not None else None

    def _post_processing_mb(self, names: Sequence[str]) -> int:
        return post_processing_mb(names, self._sizes.by_post_processor)

    def _seats(self, slots: Sequence[PlacedSlot], running: Mapping[int, Sequence[str]]) -> list[SeatView]:
        seats = []
        for slot in slots:
            plan = self._plans[slot.index] if slot.index < len(self._plans) else SlotPlan(None)
            extra = 0 if slot.idle else self._post_processing_mb(running.get(slot.index, ()))
            seats.append(
                SeatView(
                    slot.index,
                    self.device_of(slot.index),
                    slot.idle,
                    slot.model,
                    plan.allowed_models,
                    plan.max_pixels,
                    post_processing_mb=extra,
                )
            )
        return seats

    def _learn(self, slots: Sequence[PlacedSlot]) -> None:
        """A GPU's capacity: the most free memory any of its children reported when it came up."""
        if not any(plan.device is not None for plan in self._plans):
            return  # CPU slots only: their capacity is measured with psutil at each placement
        for slot in slots:
            report = slot.device
            if report is not None and report.total_mb > 0:
                known = self._gpu_capacity.get(report.index, 0)
                self._gpu_capacity[report.index] = max(known, report.free_mb)
            elif report is not None and report.index not in self._gpu_capacity:
                # NVML could not tell the memory: trust the start-up discovery.
                plan = self._plans[slot.index]
                self._gpu_capacity[report.index] = plan.device.free_mb if plan.device is not None else 0

    def _capacities(self, seats: Sequence[SeatView]) -> tuple[dict[int | None, int], dict[int | None, int]]:
        """Each device's memory for models now, and the most it could ever offer (CPU: total RAM)."""
        capacity: dict[int | None, int] = dict(self._gpu_capacity)
        ceiling: dict[int | None, int] = dict(self._gpu_capacity)
        if any(seat.device is None for seat in seats):
            busy = sum(
                self._sizes.by_model.get(seat.model, self._sizes.default_mb) + seat.post_processing_mb
                for seat in seats
                if seat.device is None and not seat.idle and seat.model
            )
            memory = psutil.virtual_memory()
            capacity[None] = memory.available // MB + busy
            ceiling[None] = memory.total // MB
        return capacity, ceiling

    def place(
        self,
        model: str,
        pixels: int,
        slots: Sequence[PlacedSlot],
        queued_models: Sequence[str],
        *,
        post_processing: Sequence[str] = (),
        running: Mapping[int, Sequence[str]] | None = None,
    ) -> Placement:
        """Where a job for `model` at `pixels` with these post-processors goes now (see `place_job`).

        `running`: the post-processors of the job each busy slot runs, by slot index."""
        self._learn(slots)
        seats = self._seats(slots, running or {})
        capacity, ceiling = self._capacities(seats)
        job = JobNeeds(model, pixels, self._post_processing_mb(post_processing))
        placement = place_job(
            job,
            seats,
            capacity_mb=capacity,
            sizes=self._sizes.by_model,
            default_mb=self._sizes.default_mb,
            queued_models=queued_models,
            ceiling_mb=ceiling,
        )
        if placement.oversize:
            self._tell_oversize(job, self.device_of(placement.slot or 0), ceiling)
        return placement

    def _tell_oversize(self, job: JobNeeds, device: int | None, ceiling: Mapping[int | None, int]) -> None:
        """Once per model (and post-processing need): its jobs run alone, relying on offloading."""
        key = f"{job.model}+{job.post_processing_mb}"
        if key in self._told_oversize:
            return
        self._told_oversize.add(key)
        where = f"GPU {device}" if device is not None else "the CPU"
        extra = f" plus {job.post_processing_mb} MB for its post-processors" if job.post_processing_mb else ""
        logger.info(
            f"'{job.model}' needs about {self._sizes.by_model.get(job.model, self._sizes.default_mb)} MB{extra} by "
            f"estimate, more than {where} offers ({ceiling.get(device, 0)} MB): its jobs run alone "
            "there and rely on the backend offloading weights"
        )
