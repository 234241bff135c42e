"""A fake NVML library behind `NvmlLibrary`: scripted GPUs for the telemetry tests.

Each `FakeGpu` holds what NVML would answer now; a test changes the figures between samples. A GPU
with `power_w=None` answers power calls with `NVMLError_NotSupported`, as cards without a power
sensor do, and one with `energy_mj=None` (the default) the energy counter's, as cards before Volta
do; `no_driver=True` makes `nvmlInit` fail as it does on a machine without NVIDIA drivers.
`block_power` holds the power call in the sampler's thread until the test releases it;
`shutdown_entered` tells a test (in any thread) that NVML was shut down.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

MB = 1024 * 1024
BLOCK_LIMIT_S = 60.0  # a test that forgets to release the call must not hang for ever


class FakeNVMLError(Exception):
    """What the fake raises, as pynvml raises its NVMLError subclasses."""


class FakeNVMLErrorNotSupported(FakeNVMLError):
    """The card has no such sensor."""


class FakeNVMLErrorDriverNotLoaded(FakeNVMLError):
    """No NVIDIA driver on this machine."""

    def __str__(self) -> str:
        return "Driver Not Loaded"


@dataclass
class FakeGpu:
    """One GPU's answers."""

    name: str
    vram_used_mb: float
    vram_total_mb: float
    utilisation_pct: int
    temperature_c: int
    power_w: float | None
    power_limit_w: float | None
    energy_mj: float | None = None  # the driver's energy counter, mJ


@dataclass
class FakeNvml:
    """The NVML calls the telemetry makes, answered from `gpus`."""

    gpus: list[FakeGpu]
    no_driver: bool = False
    NVMLError: type[Exception] = FakeNVMLError
    NVML_TEMPERATURE_GPU: int = 0
    initialised: int = 0
    shut_down: int = 0
    block_power: threading.Event | None = None  # given: each power call waits until it is set
    power_entered: threading.Event = field(default_factory=threading.Event)
    shutdown_entered: threading.Event = field(default_factory=threading.Event)
    power_thread: threading.Thread | None = None  # the thread the last power call ran on
    lost: set[int] = field(default_factory=set)  # indexes of GPUs that fell off the bus (no handle)

    def nvmlInit(self) -> None:
        if self.no_driver:
            raise FakeNVMLErrorDriverNotLoaded
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shut_down += 1
        self.shutdown_entered.set()

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if index in self.lost:
            raise FakeNVMLError("GPU is lost")
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return handle.name

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(used=int(handle.vram_used_mb * MB), total=int(handle.vram_total_mb * MB))

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=handle.utilisation_pct, memory=0)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        return handle.temperature_c

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self.power_thread = threading.current_thread()
        if self.block_power is not None:
            self.power_entered.set()
            assert self.block_power.wait(BLOCK_LIMIT_S), "the test never released the power call"
        if handle.power_w is None:
            raise FakeNVMLErrorNotSupported
        return int(handle.power_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        if handle.power_limit_w is None:
            raise FakeNVMLErrorNotSupported
        return int(handle.power_limit_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        if handle.energy_mj is None:
            raise FakeNVMLErrorNotSupported
        return int(handle.energy_mj)


def two_gpus() -> FakeNvml:
    """A 24 GB card drawing 300 W of its 450 W, and an older 8 GB card without a power sensor."""
    return FakeNvml(
        [
            FakeGpu("NVIDIA GeForce RTX 4090", 10_240.0, 24_564.0, 87, 66, 300.0, 450.0),
            FakeGpu("NVIDIA GeForce GTX 1070", 2_048.0, 8_192.0, 12, 41, None, None),
        ]
    )
