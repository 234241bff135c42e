"""The bridge from the running slots to the pure placement policy (`scheduling.memory.place_job`).

It knows each slot's plan (device, model list, max pixels) by slot index, learns each GPU's memory
from the `ChildReady` of its children, and measures the RAM left for CPU slots with psutil.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import psutil
from loguru import logger

from horde_worker_regen.devices.model_sizes import ModelSizes
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.scheduling.memory import JobNeeds, Placement, SeatView, place_job

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

    def _seats(self, slots: Sequence[PlacedSlot]) -> list[SeatView]:
        seats = []
        for slot in slots:
            plan = self._plans[slot.index] if slot.index < len(self._plans) else SlotPlan(None)
            seats.append(
                SeatView(
                    slot.index, self.device_of(slot.index), slot.idle, slot.model, plan.allowed_models, plan.max_pixels
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
                self._sizes.by_model.get(seat.model, self._sizes.default_mb)
                for seat in seats
                if seat.device is None and not seat.idle and seat.model
            )
            memory = psutil.virtual_memory()
            capacity[None] = memory.available // MB + busy
            ceiling[None] = memory.total // MB
        return capacity, ceiling

    def place(self, model: str, pixels: int, slots: Sequence[PlacedSlot], queued_models: Sequence[str]) -> Placement:
        """Where a job for `model` at `pixels` goes now (see `place_job`)."""
        self._learn(slots)
        seats = self._seats(slots)
        capacity, ceiling = self._capacities(seats)
        placement = place_job(
            JobNeeds(model, pixels),
            seats,
            capacity_mb=capacity,
            sizes=self._sizes.by_model,
            default_mb=self._sizes.default_mb,
            queued_models=queued_models,
            ceiling_mb=ceiling,
        )
        if placement.oversize and model not in self._told_oversize:
            self._told_oversize.add(model)
            device = self.device_of(placement.slot or 0)
            where = f"GPU {device}" if device is not None else "the CPU"
            logger.info(
                f"'{model}' needs about {self._sizes.by_model.get(model, self._sizes.default_mb)} MB by "
                f"estimate, more than {where} offers ({ceiling.get(device, 0)} MB): its jobs run alone "
                "there and rely on the backend offloading weights"
            )
        return placement
