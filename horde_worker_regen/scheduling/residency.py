"""Pure model-residency policies: which slot takes a job, and which models to offer first.

A slot's child keeps the last model it ran loaded, so a job started on a slot that already holds its
model skips the load. When no idle slot holds the model, the job goes to an empty slot, else to the
slot whose model the queue needs least: that is how a busy model gets a second resident copy when
demand calls for it, without evicting a model that queued jobs are waiting on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotView:
    """What residency needs to know of a slot: its index, the model it holds, and whether it is idle."""

    index: int
    model: str | None
    idle: bool


def choose_slot_for(model: str, slots: Sequence[SlotView], queued_models: Sequence[str] = ()) -> int | None:
    """The idle slot to run a job for `model` on; None when no slot is idle.

    Order of preference: an idle slot already holding `model`; an idle slot holding nothing; the idle
    slot whose model the other queued jobs ask for least (lowest index on ties).
    """
    idle = [slot for slot in slots if slot.idle]
    if not idle:
        return None
    holding = [slot.index for slot in idle if slot.model == model]
    if holding:
        return min(holding)
    empty = [slot.index for slot in idle if slot.model is None]
    if empty:
        return min(empty)
    demand = Counter(queued_models)
    return min(idle, key=lambda slot: (demand[slot.model or ""], slot.index)).index


def offer_order(models: Sequence[str], slots: Sequence[SlotView]) -> list[str]:
    """`models` ordered by how soon this worker could start them.

    First the models loaded in an idle slot (they start at once, no load), then those loaded in a busy
    slot, then the rest, each group in the configured order.
    """

    def rank(model: str) -> int:
        if any(slot.idle and slot.model == model for slot in slots):
            return 0
        if any(slot.model == model for slot in slots):
            return 1
        return 2

    return sorted(models, key=rank)  # sorted is stable: the configured order holds within a group
