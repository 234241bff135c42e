"""The GPU telemetry against a fake NVML: every figure read, a missing sensor a None, no driver a note said once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from loguru import logger

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


def _sampler(nvml: FakeNvml, clock: Clock | None = None) -> TelemetrySampler:
    clock = clock or Clock(100.0)
    return TelemetrySampler(Telemetry(), 5.0, nvml=lambda: nvml, host=lambda: HOST, clock=clock, wall_clock=clock)


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

    sampler = TelemetrySampler(Telemetry(), 5.0, nvml=two_gpus, host=host)
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
