"""Energy from power samples and kudos per kWh: never negative, never falling, in kWh, None until it means something."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.devices.energy import (
    JOULES_PER_KWH,
    MIN_KWH_FOR_RATIO,
    EnergyMeter,
    kudos_per_kwh,
    total_counter_mj,
    total_power_w,
)

# (seconds since the previous sample — negative: a clock that went back —, summed watts or None).
Samples = list[tuple[float, float | None]]
steps = st.lists(
    st.tuples(
        st.floats(min_value=-5.0, max_value=3_600.0, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=-10.0, max_value=5_000.0, allow_nan=False)),
    ),
    max_size=60,
)


def _run(samples: Samples) -> list[EnergyMeter]:
    return _run_counted([(elapsed, power, None) for elapsed, power in samples])


@given(steps)
def test_energy_never_falls_and_is_never_negative(samples: Samples) -> None:
    energies = [meter.energy_kwh for meter in _run(samples)]
    assert all(energy >= 0.0 for energy in energies)
    assert all(later >= earlier for earlier, later in pairwise(energies))


@given(
    st.floats(min_value=0.0, max_value=2_000.0, allow_nan=False),
    st.lists(st.floats(min_value=0.01, max_value=600.0, allow_nan=False), min_size=1, max_size=30),
)
def test_a_constant_draw_is_watts_times_seconds_in_kwh(watts: float, gaps: list[float]) -> None:
    meters = _run([(0.0, watts), *((gap, watts) for gap in gaps)])
    assert meters[-1].energy_kwh == pytest.approx(watts * sum(gaps) / JOULES_PER_KWH, rel=1e-9, abs=1e-15)


@given(steps)
def test_energy_is_bounded_by_the_highest_draw_over_the_time_measured(
    samples: list[tuple[float, float | None]],
) -> None:
    peak = max((power for _, power in samples if power is not None), default=0.0)
    span = sum(max(0.0, elapsed) for elapsed, _ in samples)
    energy = _run(samples)[-1].energy_kwh if samples else 0.0
    assert energy <= max(0.0, peak) * span / JOULES_PER_KWH * (1 + 1e-9)


# (seconds since the previous sample, summed watts or None, summed energy counters in mJ or None).
CountedSamples = list[tuple[float, float | None, float | None]]
counted_steps = st.lists(
    st.tuples(
        st.floats(min_value=-5.0, max_value=3_600.0, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=-10.0, max_value=5_000.0, allow_nan=False)),
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e12, allow_nan=False)),  # may go back: a reload
    ),
    max_size=60,
)


def _run_counted(samples: CountedSamples) -> list[EnergyMeter]:
    meter, at, meters = EnergyMeter(), 0.0, []
    for elapsed, power, counter in samples:
        at += elapsed
        meter = meter.add(at, power, counter)
        meters.append(meter)
    return meters


@given(counted_steps)
def test_with_energy_counters_energy_still_never_falls_and_is_never_negative(samples: CountedSamples) -> None:
    energies = [meter.energy_kwh for meter in _run_counted(samples)]
    assert all(energy >= 0.0 for energy in energies)
    assert all(later >= earlier for earlier, later in pairwise(energies))


@given(
    st.floats(min_value=0.0, max_value=1e9, allow_nan=False),
    st.lists(
        st.tuples(st.floats(min_value=0.01, max_value=600.0), st.floats(min_value=0.0, max_value=1e7)), max_size=30
    ),
)
def test_a_rising_counter_is_counted_exactly_whatever_the_power_says(
    start_mj: float, steps: list[tuple[float, float]]
) -> None:
    samples: CountedSamples = [(0.0, 300.0, start_mj)]
    counter = start_mj
    for gap, rise in steps:
        counter += rise
        samples.append((gap, 300.0, counter))
    energy = _run_counted(samples)[-1].energy_kwh
    assert energy == pytest.approx((counter - start_mj) / 1000.0 / JOULES_PER_KWH, rel=1e-9, abs=1e-15)


def test_a_counter_that_went_back_falls_back_to_the_power_for_that_interval() -> None:
    meters = _run_counted([(0.0, 100.0, 9_000_000.0), (10.0, 100.0, 5_000.0), (10.0, 100.0, 2_005_000.0)])
    assert meters[-1].energy_kwh == pytest.approx((100.0 * 10.0 + 2_000.0) / JOULES_PER_KWH)


def test_energy_counters_are_summed_only_when_every_gpu_keeps_one() -> None:
    assert total_counter_mj([1_000.0, 2_500.0]) == 3_500.0
    assert total_counter_mj([1_000.0, None]) is None
    assert total_counter_mj([]) is None


def test_a_sample_without_power_ends_the_trapezoids_and_the_gap_counts_nothing() -> None:
    meters = _run([(0.0, 100.0), (10.0, None), (10.0, 100.0), (10.0, 100.0)])
    assert meters[-1].energy_kwh == pytest.approx(100.0 * 10.0 / JOULES_PER_KWH)


def test_one_kilowatt_for_one_hour_is_one_kwh() -> None:
    assert _run([(0.0, 1_000.0), (3_600.0, 1_000.0)])[-1].energy_kwh == pytest.approx(1.0)


def test_power_is_summed_over_the_gpus_that_report_it() -> None:
    assert total_power_w([300.0, None, 50.5]) == 350.5
    assert total_power_w([None, None]) is None
    assert total_power_w([]) is None


@given(st.floats(min_value=0.0, max_value=1e7, allow_nan=False), st.floats(min_value=0.0, max_value=1e4))
def test_kudos_per_kwh_is_none_until_enough_energy_then_the_plain_ratio(kudos: float, energy: float) -> None:
    ratio = kudos_per_kwh(kudos, energy)
    if energy < MIN_KWH_FOR_RATIO:
        assert ratio is None
    else:
        assert ratio is not None and ratio >= 0.0
        assert ratio == pytest.approx(kudos / energy)
