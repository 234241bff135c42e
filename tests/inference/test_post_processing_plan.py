"""The horde's post-processing order: at most one upscaler, face fixers last, the request's order otherwise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.inference.post_processing_plan import (
    FACE_FIXERS,
    UPSCALERS,
    facefixer_strength,
    plan_post_processing,
)
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, LEVEL_13_POST_PROCESSORS

NAMES = sorted(FACE_FIXERS | UPSCALERS | {BACKGROUND_REMOVAL, "Nope", "GFPGANv1_3"})


def test_the_eight_new_names_are_known_as_what_they_are() -> None:
    assert LEVEL_13_POST_PROCESSORS <= FACE_FIXERS | UPSCALERS
    assert {"GFPGANv1.3", "RestoreFormer"} <= FACE_FIXERS
    assert "4xNomos2_hq_dat2" in UPSCALERS and "2xModernSpanimationV1" in UPSCALERS


def test_face_fixers_go_last_and_a_second_upscaler_is_dropped() -> None:
    plan = plan_post_processing(["RestoreFormer", "4xNomos8kSC", "strip_background", "GFPGAN", "2xModernSpanimationV1"])
    assert plan.steps == ("4xNomos8kSC", "strip_background", "RestoreFormer", "GFPGAN")
    assert plan.extra_upscalers == ("2xModernSpanimationV1",) and plan.unknown == ()


@given(st.lists(st.sampled_from(NAMES), max_size=8))
def test_any_request_gives_at_most_one_upscaler_the_face_fixers_last_and_otherwise_its_order(
    requested: list[str],
) -> None:
    plan = plan_post_processing(requested)
    steps = list(plan.steps)
    upscalers = [name for name in requested if name in UPSCALERS]
    assert [name for name in steps if name in UPSCALERS] == upscalers[:1]
    assert list(plan.extra_upscalers) == upscalers[1:]
    assert list(plan.unknown) == [
        name for name in requested if name not in FACE_FIXERS | UPSCALERS | {"strip_background"}
    ]
    faces = [name for name in steps if name in FACE_FIXERS]
    assert steps[len(steps) - len(faces) :] == faces == [name for name in requested if name in FACE_FIXERS]
    first_upscaler = requested.index(upscalers[0]) if upscalers else None
    others = [
        name
        for index, name in enumerate(requested)
        if name not in FACE_FIXERS and name not in plan.unknown and (name not in UPSCALERS or index == first_upscaler)
    ]
    assert steps[: len(steps) - len(faces)] == others


@pytest.mark.parametrize(
    ("payload", "strength"),
    [
        ({}, 1.0),
        ({"facefixer_strength": None}, 1.0),
        ({"facefixer_strength": 0}, 0.0),
        ({"facefixer_strength": 0.0}, 0.0),
        ({"facefixer_strength": 0.35}, 0.35),
        ({"facefixer_strength": "0.5"}, 0.5),
        ({"facefixer_strength": 7}, 1.0),
        ({"facefixer_strength": -2}, 0.0),
        ({"facefixer_strength": "much"}, 1.0),
        ({"facefixer_strength": math.nan}, 1.0),
        ({"facefixer_strength": True}, 1.0),
    ],
)
def test_facefixer_strength_defaults_to_full_and_is_clamped(payload: dict[str, object], strength: float) -> None:
    assert facefixer_strength(payload) == strength
