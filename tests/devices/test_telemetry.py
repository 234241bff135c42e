"""The GPU telemetry against a fake NVML: every figure read, a missing sensor a None, no driver a note said once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from loguru import logger

from horde_worker_regen.devices.energy import JOULES_PER_KWH
from horde_worker_regen.devices.telemetry import GpuProbe, HostReading, load_nvml
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.worker.telemetry_sampler import TelemetrySampler
from tests.devices.fake_nvml import FakeNvml, two_gpus

HOST = HostReading(cpu_pct=12.5, ram_used_mb=6_000.0, ram_total_mb=32_000.0)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


BOTH = frozenset({0, 1})


def _sampler(nvml: FakeNvml, clock: Clock | None = None, used_gpus: frozenset[int] = BOTH) -> TelemetrySampler:
    clock = clock or Clock(100.0)
    telemetry = Telemetry(used_gpus=used_gpus)
    return TelemetrySampler(telemetry, 5.0, nvml=lambda: nvml, host=lambda: HOST, clock=clock, wall_clock=clock)


@contextmanager
def _sampler_log() -> Iterator[list[str]]:
    """The sampler's own log records at INFO and above (to count how often it said something)."""
    records: list[str] = []
    sink = logger.add(
        lambda message: records.append(message.record["message"]),
        level="INFO",
        filter="horde_worker_regen.worker.telemetry_sampler",
    )
    try:
        yield records
    finally:
        logger.remove(sink)


def test_every_field_of_every_gpu_is_read_and_a_missing_power_sensor_is_none() -> None:
    probe = GpuProbe(two_gpus())
    assert probe.open() is None
    big, old = probe.read()
    assert (big.index, big.name, big.vram_used_mb, big.vram_total_mb) == (0, "NVIDIA GeForce RTX 4090", 10_240, 24_564)
    assert (big.utilisation_pct, big.temperature_c, big.power_w, big.power_limit_w) == (87, 66, 300.0, 450.0)
    assert (old.index, old.name, old.vram_total_mb, old.utilisation_pct) == (1, "NVIDIA GeForce GTX 1070", 8_192, 12)
    assert old.power_w is None and old.power_limit_w is None


def test_a_device_nvml_cannot_open_leaves_its_fields_none_and_the_others_are_read() -> None:
    nvml = two_gpus()
    nvml.lost.add(0)
    probe = GpuProbe(nvml)
    assert probe.open() is None
    first, second = probe.read()
    assert first.vram_used_mb is None and first.power_w is None and "unreadable" in first.name
    assert second.vram_used_mb == 2_048


async def test_the_sampler_records_gpus_host_and_energy_and_lets_nvml_go() -> None:
    nvml, clock = two_gpus(), Clock(100.0)
    sampler = _sampler(nvml, clock)
    await sampler.open()
    await sampler.sample()
    clock.now += 10.0
    nvml.gpus[0].power_w = 400.0
    await sampler.sample()
    telemetry = sampler.telemetry
    assert telemetry.available and telemetry.source == "nvml" and telemetry.note is None
    assert [gpu.power_w for gpu in telemetry.gpus] == [400.0, None]
    assert telemetry.host == HOST and telemetry.sampled_at == 110.0
    # 10 s at (300 + 400) / 2 W = 3500 J; the card without a sensor adds nothing.
    assert telemetry.meter.energy_kwh == pytest.approx(3500 / 3_600_000)
    await sampler.close()
    assert nvml.shut_down == 1


async def _ten_seconds(nvml: FakeNvml, used_gpus: frozenset[int], change: Callable[[], None] = lambda: None) -> float:
    """The energy (J) the sampler measures over two samples 10 s apart, `change` made between them."""
    clock = Clock(100.0)
    sampler = _sampler(nvml, clock, used_gpus)
    await sampler.open()
    await sampler.sample()
    clock.now += 10.0
    change()
    await sampler.sample()
    await sampler.close()
    return sampler.telemetry.meter.energy_kwh * JOULES_PER_KWH


async def test_only_the_gpus_the_worker_runs_on_count_toward_the_energy() -> None:
    nvml = two_gpus()
    nvml.gpus[1].power_w = 100.0  # a desktop card beside the worker's, drawing power the worker does not earn with
    assert await _ten_seconds(nvml, frozenset({0})) == pytest.approx(3000.0)
    assert await _ten_seconds(nvml, frozenset({1})) == pytest.approx(1000.0)
    assert await _ten_seconds(nvml, BOTH) == pytest.approx(4000.0)
    assert await _ten_seconds(nvml, frozenset()) == 0.0  # a CPU worker: no GPU energy at all


async def test_the_drivers_energy_counter_is_used_where_every_used_gpu_keeps_one() -> None:
    nvml = two_gpus()
    nvml.gpus[0].energy_mj = 1_000_000.0

    def burst() -> None:  # 300 W at both samples, but 5 kJ drawn between them: the counter is exact
        nvml.gpus[0].energy_mj = 6_000_000.0

    assert await _ten_seconds(nvml, frozenset({0}), burst) == pytest.approx(5000.0)
    # GPU 1 keeps no counter: a partial sum would be wrong, so the power's trapezoid is used for both.
    assert await _ten_seconds(nvml, BOTH, burst) == pytest.approx(3000.0)

    def reloaded() -> None:  # the driver reloaded: its counter starts again from 0
        nvml.gpus[0].energy_mj = 20_000.0

    nvml.gpus[0].energy_mj = 1_000_000.0
    assert await _ten_seconds(nvml, frozenset({0}), reloaded) == pytest.approx(3000.0)

    def lost() -> None:  # NVML lost the GPU at the second sample: nothing measured, nothing guessed
        nvml.lost.add(0)

    nvml.gpus[0].energy_mj = 1_000_000.0
    assert await _ten_seconds(nvml, frozenset({0}), lost) == 0.0


async def test_without_a_driver_the_note_is_said_once_and_the_host_is_still_sampled() -> None:
    sampler = _sampler(FakeNvml([], no_driver=True))
    with _sampler_log() as said:
        await sampler.open()
        for _ in range(3):
            await sampler.sample()
    telemetry = sampler.telemetry
    assert not telemetry.available and telemetry.source == "none"
    assert telemetry.note == "no GPU telemetry: Driver Not Loaded"
    assert telemetry.gpus == [] and telemetry.host == HOST
    assert len(said) == 1  # said once, not at every sample


async def test_nvml_without_any_gpu_is_no_gpu_telemetry() -> None:
    nvml = FakeNvml([])
    sampler = _sampler(nvml)
    await sampler.open()
    assert sampler.telemetry.note == "no GPU telemetry: NVML sees no GPU"
    assert nvml.shut_down == 1


async def test_a_sample_that_fails_as_a_whole_is_skipped_and_the_next_one_is_taken() -> None:
    failures = iter([RuntimeError("psutil could not read /proc")])

    def host() -> HostReading:
        for error in failures:
            raise error
        return HOST

    sampler = TelemetrySampler(Telemetry(used_gpus=BOTH), 5.0, nvml=two_gpus, host=host)
    await sampler.open()
    await sampler.sample()
    assert sampler.telemetry.sampled_at is None
    await sampler.sample()
    assert sampler.telemetry.host == HOST and len(sampler.telemetry.gpus) == 2


def test_the_real_bindings_load_and_say_why_there_is_no_gpu_here() -> None:
    library = load_nvml()
    assert not isinstance(library, str), library  # nvidia-ml-py is a dependency
    probe = GpuProbe(library)
    note = probe.open()
    if note is None:  # a machine with an NVIDIA driver: the real GPUs are read
        assert all(gpu.vram_total_mb for gpu in probe.read())
        probe.close()
    else:
        assert note.startswith("no GPU telemetry: ")
