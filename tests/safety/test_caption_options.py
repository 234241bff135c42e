"""The caption form's options from the requester's payload: defaults, clamping, and never a failure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horde_worker_regen.safety.caption_options import (
    MAX_LENGTH_CAP,
    MIN_LENGTH,
    NUM_BEAMS,
    REPETITION_PENALTY,
    TOP_P,
    CaptionOptions,
    caption_options,
)

KEYS = ("num_beams", "min_length", "max_length", "top_p", "repetition_penalty")


def test_an_empty_payload_gives_the_legacy_defaults() -> None:
    assert caption_options({}) == CaptionOptions(
        num_beams=7, min_length=20, max_length=50, top_p=0.9, repetition_penalty=1.4
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"num_beams": "3"}, {"num_beams": 3}),
        ({"num_beams": " 4 "}, {"num_beams": 4}),
        ({"num_beams": "2.6"}, {"num_beams": 3}),
        ({"num_beams": "0"}, {"num_beams": NUM_BEAMS[1]}),
        ({"num_beams": "1e9"}, {"num_beams": NUM_BEAMS[2]}),
        ({"num_beams": "many"}, {}),
        ({"num_beams": ""}, {}),
        ({"num_beams": "nan"}, {}),
        ({"num_beams": "9" * 5000}, {"num_beams": NUM_BEAMS[2]}),
        ({"min_length": "10"}, {"min_length": 10, "max_length": 40}),  # max follows min by default
        ({"min_length": "-inf"}, {"min_length": MIN_LENGTH[1], "max_length": MIN_LENGTH[1] + 30}),
        ({"min_length": "500"}, {"min_length": MIN_LENGTH[2], "max_length": MIN_LENGTH[2] + 30}),
        ({"max_length": "35"}, {"max_length": 35}),
        ({"min_length": "30", "max_length": "10"}, {"min_length": 30, "max_length": 30}),  # never below min
        ({"max_length": "inf"}, {"max_length": MAX_LENGTH_CAP}),
        ({"top_p": "0.5"}, {"top_p": 0.5}),
        ({"top_p": "2"}, {"top_p": TOP_P[2]}),
        ({"top_p": "0"}, {"top_p": TOP_P[1]}),
        ({"top_p": "NaN"}, {}),
        ({"repetition_penalty": "0.2"}, {"repetition_penalty": REPETITION_PENALTY[1]}),
        ({"repetition_penalty": "1.1"}, {"repetition_penalty": 1.1}),
        ({"repetition_penalty": "1,1"}, {}),
        ({"sample": "false", "top_k": "3"}, {}),  # options BLIP is not asked for are ignored
    ],
)
def test_each_option_is_read_clamped_or_defaulted(payload: dict[str, str], expected: dict[str, float]) -> None:
    defaults = caption_options({})
    options = caption_options(payload)
    for key in KEYS:
        want = expected.get(key, getattr(defaults, key))
        assert getattr(options, key) == pytest.approx(want), key


def _in_range(options: CaptionOptions) -> None:
    assert type(options.num_beams) is int and NUM_BEAMS[1] <= options.num_beams <= NUM_BEAMS[2]
    assert type(options.min_length) is int and MIN_LENGTH[1] <= options.min_length <= MIN_LENGTH[2]
    assert type(options.max_length) is int and options.min_length <= options.max_length
    assert options.max_length <= max(MAX_LENGTH_CAP, options.min_length)
    assert TOP_P[1] <= options.top_p <= TOP_P[2]
    assert REPETITION_PENALTY[1] <= options.repetition_penalty <= REPETITION_PENALTY[2]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=12),
        st.text(max_size=40)
        | st.floats(allow_nan=True, allow_infinity=True).map(repr)
        | st.integers(min_value=-(10**30), max_value=10**30).map(str),
    )
)
def test_any_string_payload_gives_options_in_range(payload: dict[str, str]) -> None:
    _in_range(caption_options(payload))


@given(st.dictionaries(st.sampled_from(KEYS), st.none() | st.booleans() | st.lists(st.integers()) | st.floats()))
def test_values_that_are_not_strings_do_not_fail_either(payload: dict[str, object]) -> None:
    _in_range(caption_options(payload))
