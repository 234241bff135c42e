"""The alchemist's pure policies, table by table."""

from __future__ import annotations

import pytest

from horde_worker_regen.scheduling.alchemy import (
    ALL_FORMS,
    BACKGROUND_REMOVAL_NOT_READY,
    CAPTION_OFF,
    LEVEL_13_NOT_READY,
    NO_ANALYSIS,
    NO_POST_PROCESSING,
    NOT_A_FORM,
    REPORT_RESERVE_S,
    AlchemyCapacity,
    FormRoom,
    FormStart,
    FormSupply,
    PopPlan,
    form_availability,
    form_causes,
    form_gate,
    form_room,
    form_start,
    may_send_analysis,
    may_take_slot,
    pop_plan,
    served_forms,
    unserved_reason,
)
from horde_worker_regen.scheduling.breaker import BreakerSettings, Cause, FaultBreaker

CONFIGURED = ("caption", "nsfw", "interrogation", "RealESRGAN_x4plus", "4xNomos8kSC", "strip_background", "GFPGANv1.3")
EVERYTHING = FormSupply(
    frozenset({"caption", "nsfw", "interrogation"}), True, True, frozenset({"4xNomos8kSC", "strip_background"})
)


@pytest.mark.parametrize(
    ("supply", "served"),
    [
        (EVERYTHING, ("caption", "nsfw", "interrogation", "RealESRGAN_x4plus", "4xNomos8kSC", "strip_background")),
        # caption costs BLIP's memory: only with alchemy_caption_enabled
        (FormSupply(EVERYTHING.analysis, False, True, frozenset({"strip_background"})),
         ("nsfw", "interrogation", "RealESRGAN_x4plus", "strip_background")),
        # rembg's model not on disk and verified yet: strip_background waits, as a level-13 one does for its files
        (FormSupply(EVERYTHING.analysis, False, True, frozenset()), ("nsfw", "interrogation", "RealESRGAN_x4plus")),
        # no post-processor references: no post-processor, not even one whose files are ready
        (FormSupply(EVERYTHING.analysis, True, False, frozenset({"4xNomos8kSC", "strip_background"})),
         ("caption", "nsfw", "interrogation")),
        # a safety backend that answers no form
        (FormSupply(frozenset(), True, True, frozenset({"strip_background"})),
         ("RealESRGAN_x4plus", "strip_background")),
    ],
)  # fmt: skip
def test_only_forms_this_worker_can_serve_now_are_named(supply: FormSupply, served: tuple[str, ...]) -> None:
    assert served_forms(CONFIGURED, supply) == served


def test_a_name_the_horde_does_not_know_is_never_served() -> None:
    assert served_forms(("vectorize", "post_process", "Caption"), EVERYTHING) == ()


def _capacity(**changes: object) -> AlchemyCapacity:
    fields: dict[str, object] = {
        "accepting": True, "max_concurrency": 1, "allow_concurrent": True, "images_held": 0, "images_waiting": 0,
        "idle_slots": 1, "analysis_held": 0, "post_processing_held": 0, "post_processing_waiting": 0,
    }  # fmt: skip
    return AlchemyCapacity(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "room"),
    [
        ({}, FormRoom(1, 1)),
        ({"accepting": False}, FormRoom(0, 0)),
        ({"images_waiting": 1}, FormRoom(1, 0)),  # an image job waits for a slot: no post-processor
        ({"images_coming": True}, FormRoom(1, 0)),  # nor while image jobs keep coming: the idle slot is theirs
        ({"idle_slots": 0}, FormRoom(1, 0)),
        ({"idle_slots": 3, "max_concurrency": 2}, FormRoom(2, 2)),
        ({"idle_slots": 3, "max_concurrency": 2, "post_processing_waiting": 1, "post_processing_held": 1},
         FormRoom(2, 1)),
        ({"analysis_held": 1}, FormRoom(0, 1)),
        ({"images_held": 2}, FormRoom(1, 1)),  # alongside image jobs, with alchemy_allow_concurrent
        ({"images_held": 2, "allow_concurrent": False}, FormRoom(0, 0)),
    ],
)  # fmt: skip
def test_room_for_forms_is_what_image_jobs_leave(changes: dict[str, object], room: FormRoom) -> None:
    assert form_room(_capacity(**changes)) == room


@pytest.mark.parametrize(
    ("room", "plan"),
    [
        (FormRoom(1, 2), PopPlan(("caption", "RealESRGAN_x4plus"), 1)),
        (FormRoom(0, 2), PopPlan(("RealESRGAN_x4plus",), 2, complete=False)),
        (FormRoom(3, 0), PopPlan(("caption",), 3, complete=False)),
        (FormRoom(0, 0), PopPlan((), 0, complete=False)),
    ],
)
def test_a_pop_takes_no_more_than_the_smallest_room_among_its_lanes(room: FormRoom, plan: PopPlan) -> None:
    assert pop_plan(("caption", "RealESRGAN_x4plus"), room) == plan


def test_with_no_form_to_offer_at_all_the_plan_is_complete_and_empty() -> None:
    # Burst mode reads `complete`: only a pop (or no pop) covering every offerable form can say "nothing left".
    assert pop_plan((), FormRoom(1, 1)) == PopPlan((), 0, complete=True)


@pytest.mark.parametrize(("checks", "running", "sent"), [(0, 0, True), (1, 0, False), (0, 1, False), (3, 1, False)])
def test_image_checks_go_first_at_the_safety_child(checks: int, running: int, sent: bool) -> None:
    assert may_send_analysis(checks, running, max_concurrency=1) is sent
    assert may_take_slot(images_waiting=0) and not may_take_slot(images_waiting=1)
    assert not may_take_slot(images_waiting=0, images_coming=True)


@pytest.mark.parametrize(
    ("now", "expected", "decision"),
    [
        (0.0, 10.0, FormStart.RUN),
        (180.0 - REPORT_RESERVE_S - 10.0, 10.0, FormStart.RUN),
        (180.0 - REPORT_RESERVE_S - 10.0, 10.5, FormStart.FAULT),  # could not be reported in time
        (179.0, 0.0, FormStart.FAULT),
        (180.0, 0.0, FormStart.DROP),  # the horde has taken it back
    ],
)
def test_a_form_runs_only_if_it_can_be_reported_before_its_deadline(
    now: float, expected: float, decision: FormStart
) -> None:
    assert form_start(now, 180.0, expected) is decision


def test_the_breaker_withdraws_a_failing_form_and_then_alchemy_as_a_whole() -> None:
    breaker = FaultBreaker(BreakerSettings(cooldown_s=600.0, strikes=2, cap=4))
    forms = ("caption", "RealESRGAN_x4plus")
    for _ in range(2):
        for cause in form_causes("RealESRGAN_x4plus", "failing_feature"):
            breaker.record(cause, "no image", now=0.0)
    assert form_gate(breaker, forms, {}, now=1.0) == ("caption",)
    breaker.record(form_causes("caption", "transient")[1], "lost", now=2.0)  # counted for alchemy only
    assert form_gate(breaker, forms, {}, now=3.0) == ("caption",)
    breaker.record(form_causes("caption", "transient")[1], "lost", now=4.0)
    assert ALL_FORMS in breaker.withdrawn and form_gate(breaker, forms, {}, now=5.0) == ()
    breaker.reinstate(now=605.0)  # the cool-downs are over, but the hour still holds 4 faults of alchemy
    assert form_gate(breaker, forms, {}, now=605.0) == ()
    breaker.reinstate(now=3605.0)
    assert form_gate(breaker, forms, {}, now=3605.0) == forms


def test_forms_held_count_toward_what_may_still_fault() -> None:
    breaker = FaultBreaker(BreakerSettings(cap=3))
    breaker.record(form_causes("nsfw", "transient")[1], "x", now=0.0)
    assert form_gate(breaker, ("nsfw",), {"nsfw": 1}, now=1.0) == ("nsfw",)
    assert form_gate(breaker, ("nsfw",), {"nsfw": 2}, now=1.0) == ()


def test_every_configured_form_is_offered_or_says_why_not() -> None:
    supply = FormSupply(EVERYTHING.analysis, False, True, frozenset())
    found = {form.form: form.reason for form in form_availability(CONFIGURED, supply, {})}
    assert list(found) == list(CONFIGURED)
    assert found["caption"] == CAPTION_OFF
    assert found["4xNomos8kSC"] == found["GFPGANv1.3"] == LEVEL_13_NOT_READY
    assert found["strip_background"] == BACKGROUND_REMOVAL_NOT_READY
    assert {form for form, reason in found.items() if reason is None} == set(served_forms(CONFIGURED, supply))
    no_references = FormSupply(EVERYTHING.analysis, True, False, frozenset())
    assert {
        form.reason for form in form_availability(("RealESRGAN_x4plus", "strip_background"), no_references, {})
    } == {NO_POST_PROCESSING}
    assert unserved_reason("vectorize", EVERYTHING) == NOT_A_FORM
    assert unserved_reason("nsfw", FormSupply(frozenset(), True, True, frozenset())) == NO_ANALYSIS
    fetching = FormSupply(EVERYTHING.analysis, True, True, frozenset(), caption_model="its model is being fetched")
    assert unserved_reason("caption", fetching) == "its model is being fetched"  # enabled, its model not there yet
    assert unserved_reason("nsfw", fetching) is None


def test_a_withdrawn_form_and_alchemy_paused_as_a_whole_say_so() -> None:
    breaker = FaultBreaker(BreakerSettings(strikes=2))
    for _ in range(2):
        breaker.record(form_causes("nsfw", "failing_feature")[0], "its model is broken", 100.0)
    offered = {form.form: form for form in form_availability(CONFIGURED, EVERYTHING, breaker.withdrawn)}
    assert not offered["nsfw"].offered and offered["interrogation"].offered
    assert offered["nsfw"].reason == "withdrawn: 2 of its forms faulted in a row (last: its model is broken)"
    for second in range(10):  # the rolling cap of alchemy as a whole
        breaker.record(Cause("transient", ALL_FORMS), "no answer in time", 200.0 + second)
    paused = form_availability(CONFIGURED, EVERYTHING, breaker.withdrawn)
    assert not any(form.offered for form in paused)
    assert paused[1].reason == "alchemy paused: 10 forms faulted within the hour (last: no answer in time)"
