"""Sampling the GPUs and the host every `telemetry_interval` seconds, off the event loop.

Every NVML and psutil call runs in a thread (`asyncio.to_thread`): a driver slow to answer delays the
next sample, never a pop, a heartbeat or a dashboard request. Without NVML (no NVIDIA driver, no
GPU) the worker says "no GPU telemetry" once, in the log and in the telemetry's note, and goes on
sampling the host's CPU and memory. A sample that fails as a whole is logged once and skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger

from horde_worker_regen.devices.telemetry import (
    NO_TELEMETRY,
    GpuProbe,
    GpuReading,
    HostReading,
    NvmlLibrary,
    host_reading,
    load_nvml,
)
from horde_worker_regen.devices.telemetry_state import Telemetry

DEFAULT_INTERVAL_S = 5.0


class TelemetrySampler:
    """Fills a `Telemetry` from NVML (when it answers) and psutil."""

    def __init__(
        self,
        telemetry: Telemetry,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        nvml: Callable[[], NvmlLibrary | str] = load_nvml,
        host: Callable[[], HostReading] = host_reading,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.telemetry = telemetry
        self._interval_s = interval_s
        self._nvml = nvml
        self._host = host
        self._clock = clock
        self._wall_clock = wall_clock
        self._probe: GpuProbe | None = None
        self._failure_logged = False

    async def open(self) -> None:
        """Start NVML (in a thread); without it, say once why there are no GPU figures."""
        try:
            note = await asyncio.to_thread(self._open_probe)
        except Exception as error:  # bindings that fail in an unforeseen way: the host figures still matter
            note = f"{NO_TELEMETRY}: {type(error).__name__}: {error}"
        if note is None:
            self.telemetry.source = "nvml"
            return
        self.telemetry.note = note
        logger.info(f"{note[:1].upper()}{note[1:]}; the dashboard shows the CPU and memory instead")

    def _open_probe(self) -> str | None:
        library = self._nvml()
        if isinstance(library, str):
            return library
        probe = GpuProbe(library)
        note = probe.open()
        if note is not None:
            return note
        if not probe.read():
            probe.close()
            return f"{NO_TELEMETRY}: NVML sees no GPU"
        self._probe = probe
        return None

    async def sample(self) -> None:
        """One sample of every GPU and the host, read in a thread and recorded on the loop."""
        try:
            gpus, host = await asyncio.to_thread(self._read)
        except Exception as error:  # a sampler that stopped would leave the views stale for the rest of the run
            if not self._failure_logged:
                logger.opt(exception=error).warning("Reading the GPU telemetry failed; trying again at the next sample")
                self._failure_logged = True
            return
        self.telemetry.record(gpus, host, self._clock(), self._wall_clock())

    def _read(self) -> tuple[list[GpuReading], HostReading]:
        gpus = self._probe.read() if self._probe is not None else []
        return gpus, self._host()

    async def run(self) -> None:
        """Open, then sample every interval until cancelled; NVML is let go at the end."""
        try:
            await self.open()
            while True:
                await self.sample()
                await asyncio.sleep(self._interval_s)
        finally:
            self.close()

    def close(self) -> None:
        """Let NVML go (shutting it down is immediate; no thread needed)."""
        if self._probe is not None:
            self._probe.close()
            self._probe = None
