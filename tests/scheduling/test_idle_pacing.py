"""Idle pacing: how long the popper waits after an empty pop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.scheduling.policy import (
    HOT_POP_MIN_S,
    HOT_WINDOW_S,
    LONG_IDLE_FACTOR,
    LONG_IDLE_S,
    idle_pop_delay,
)

intervals = st.floats(min_value=0.0, max_value=600.0, allow_nan=False)
ages = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)


def test_the_setting_is_the_wait_of_an_ordinary_idle_worker() -> None:
    assert idle_pop_delay(1.0, 120.0, had_job=True) == 1.0
    assert idle_pop_delay(3.0, 5.0, had_job=False) == 3.0  # no job yet this run: no fast phase


def test_right_after_work_it_pops_four_times_as_often() -> None:
    assert idle_pop_delay(1.0, 0.0, had_job=True) == 0.25
    assert idle_pop_delay(1.0, HOT_WINDOW_S - 0.1, had_job=True) == 0.25
    assert idle_pop_delay(0.5, 1.0, had_job=True) == HOT_POP_MIN_S


def test_after_a_long_quiet_spell_it_pops_less_often() -> None:
    assert idle_pop_delay(1.0, LONG_IDLE_S + 1, had_job=True) == LONG_IDLE_FACTOR
    assert idle_pop_delay(1.0, LONG_IDLE_S + 1, had_job=False) == LONG_IDLE_FACTOR


def test_the_setting_has_a_floor_of_half_a_second() -> None:
    assert BridgeData(idle_pop_interval=0.5).idle_pop_interval == 0.5
    with pytest.raises(ValidationError, match="idle_pop_interval"):
        BridgeData(idle_pop_interval=0.2)


@given(intervals, ages, st.booleans())
def test_the_wait_stays_within_its_bounds(interval: float, age: float, had_job: bool) -> None:
    delay = idle_pop_delay(interval, age, had_job=had_job)
    assert min(HOT_POP_MIN_S, interval) <= delay <= interval * LONG_IDLE_FACTOR


@given(intervals, ages, ages)
def test_the_longer_the_quiet_the_slower_the_pops(interval: float, first: float, second: float) -> None:
    early, late = sorted((first, second))
    assert idle_pop_delay(interval, early, had_job=True) <= idle_pop_delay(interval, late, had_job=True)
