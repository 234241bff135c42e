"""GPU and host telemetry: one reading of every GPU through NVML, and of the host through psutil.

Everything here blocks (NVML calls go to the driver and can take milliseconds each), so the worker
calls it from a thread (`worker/telemetry_sampler.py`), never on its event loop. The NVML library is
reached through `NvmlLibrary`, the few calls of `nvidia-ml-py` (imported as `pynvml`) used here, so a
test runs the same code against a fake. A field a card does not support (power on some cards raises
`NVMLError_NotSupported`) or a device that cannot be read leaves its fields None; it never ends the
sampling.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psutil

MB = 1024 * 1024
NO_TELEMETRY = "no GPU telemetry"
_T = TypeVar("_T")


class NvmlLibrary(Protocol):
    """The calls of NVML (`pynvml` from nvidia-ml-py) the telemetry makes; a device handle is opaque."""

    NVMLError: type[Exception]
    NVML_TEMPERATURE_GPU: int

    # NVML's own names and units: memory in bytes (`.used`, `.total`), utilisation `.gpu` in %,
    # temperature in °C, power and its limit in mW, the energy counter in mJ since the driver loaded.
    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment; a field its card or driver would not tell is None."""

    index: int
    name: str
    vram_used_mb: float | None
    vram_total_mb: float | None
    utilisation_pct: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    energy_mj: float | None = None  # the driver's energy counter (Volta and later), for the energy meter


@dataclass(frozen=True)
class HostReading:
    """The machine's CPU (all cores, % since the previous reading) and memory."""

    cpu_pct: float
    ram_used_mb: float
    ram_total_mb: float


def load_nvml() -> NvmlLibrary | str:
    """The real NVML bindings, or why they cannot be imported."""
    try:
        with warnings.catch_warnings():  # the `pynvml` shim warns that `nvidia-ml-py` provides it now
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml  # type: ignore[import-untyped]
    except ImportError as error:
        return f"{NO_TELEMETRY}: nvidia-ml-py is not installed ({error})"
    library: NvmlLibrary = pynvml
    return library


def host_reading() -> HostReading:
    """CPU and memory of the whole machine (the first CPU figure of a process is 0: psutil needs two)."""
    memory = psutil.virtual_memory()
    return HostReading(
        cpu_pct=float(psutil.cpu_percent(interval=None)),
        ram_used_mb=(memory.total - memory.available) / MB,
        ram_total_mb=memory.total / MB,
    )


class GpuProbe:
    """Reads every GPU NVML sees, once it has been opened."""

    def __init__(self, nvml: NvmlLibrary) -> None:
        self._nvml = nvml
        self._open = False

    def open(self) -> str | None:
        """Start NVML; None when it answers, else the note that says why there is no GPU telemetry."""
        try:
            self._nvml.nvmlInit()
        except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVIDIA driver here
            return f"{NO_TELEMETRY}: {_why(error)}"
        self._open = True
        return None

    def close(self) -> None:
        """Let NVML go (once opened)."""
        if self._open:
            self._open = False
            self._guarded(self._nvml.nvmlShutdown)

    def read(self) -> list[GpuReading]:
        """Every GPU's figures now; a device NVML cannot count yields an empty list."""
        count = self._guarded(self._nvml.nvmlDeviceGetCount) or 0
        return [self._device(index) for index in range(count)]

    def _device(self, index: int) -> GpuReading:
        nvml = self._nvml
        handle = self._guarded(lambda: nvml.nvmlDeviceGetHandleByIndex(index))
        if handle is None:
            return GpuReading(index, f"GPU {index} (unreadable)", None, None, None, None, None, None)
        name = self._guarded(lambda: nvml.nvmlDeviceGetName(handle))
        memory = self._guarded(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        utilisation = self._guarded(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        temperature = self._guarded(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        power_mw = self._guarded(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        limit_mw = self._guarded(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        energy_mj = self._guarded(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return GpuReading(
            index=index,
            name=_text(name) if name is not None else f"GPU {index}",
            vram_used_mb=None if memory is None else float(memory.used) / MB,
            vram_total_mb=None if memory is None else float(memory.total) / MB,
            utilisation_pct=None if utilisation is None else float(utilisation.gpu),
            temperature_c=None if temperature is None else float(temperature),
            power_w=None if power_mw is None else power_mw / 1000.0,
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            energy_mj=None if energy_mj is None else float(energy_mj),
        )

    def _guarded(self, call: Callable[[], _T]) -> _T | None:
        """The call's answer, or None when NVML says it cannot give it (not supported, GPU lost, ...)."""
        try:
            return call()
        except self._nvml.NVMLError:
            return None


def _text(name: str | bytes) -> str:
    """Older bindings give the device name as bytes."""
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def _why(error: Exception) -> str:
    text = str(error).strip()
    return text or type(error).__name__
