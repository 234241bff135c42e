"""Residency: a job goes where its model is loaded; a second copy only displaces an unneeded model."""

from __future__ import annotations

from horde_worker_regen.scheduling.residency import SlotView, choose_slot_for, offer_order


def test_prefers_the_idle_slot_holding_the_model() -> None:
    slots = [SlotView(0, "A", True), SlotView(1, "B", True), SlotView(2, "B", False)]
    assert choose_slot_for("B", slots) == 1
    assert choose_slot_for("A", slots) == 0


def test_an_empty_slot_before_evicting_a_loaded_model() -> None:
    slots = [SlotView(0, "A", True), SlotView(1, None, True)]
    assert choose_slot_for("C", slots) == 1


def test_a_second_copy_displaces_the_model_the_queue_needs_least() -> None:
    # B is busy in slot 2; a queued B job should take the slot whose model (A or C) has no demand left.
    slots = [SlotView(0, "A", True), SlotView(1, "C", True), SlotView(2, "B", False)]
    assert choose_slot_for("B", slots, queued_models=["A", "B"]) == 1
    assert choose_slot_for("B", slots, queued_models=["C", "B"]) == 0


def test_no_idle_slot_means_no_choice() -> None:
    assert choose_slot_for("A", [SlotView(0, "A", False)]) is None


def test_offers_idle_resident_models_first_then_busy_then_the_rest() -> None:
    slots = [SlotView(0, "C", False), SlotView(1, "D", True)]
    assert offer_order(["A", "B", "C", "D"], slots) == ["D", "C", "A", "B"]
    assert offer_order(["A", "B"], []) == ["A", "B"]
