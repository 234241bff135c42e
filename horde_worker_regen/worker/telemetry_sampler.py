"""Sampling the GPUs and the host every `telemetry_interval` seconds, off the event loop.

Every NVML and psutil call (starting NVML, the reads, shutting it down) runs on the sampler's own
daemon thread (`CallThread`): a driver slow to answer delays the next sample, never a pop, a heartbeat
or a dashboard request, and a driver that never answers does not hold up the worker's exit either
(closing hands the shutdown to that thread and waits for it only briefly). Without NVML (no NVIDIA driver, no
GPU) the worker says "no GPU telemetry" once, in the log and in the telemetry's note, and goes on
sampling the host's CPU and memory. A sample that fails as a whole is logged once and skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

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
from horde_worker_regen.worker.call_thread import CallThread

DEFAULT_INTERVAL_S = 5.0
# How long closing waits for NVML's shutdown before going on without it (a wedged driver never answers).
SHUTDOWN_WAIT_S = 2.0
_T = TypeVar("_T")


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
        shutdown_wait_s: float = SHUTDOWN_WAIT_S,
    ) -> None:
        self.telemetry = telemetry
        self._interval_s = interval_s
        self._nvml = nvml
        self._host = host
        self._clock = clock
        self._wall_clock = wall_clock
        self._shutdown_wait_s = shutdown_wait_s
        self._probe: GpuProbe | None = None  # touched only on the thread, where every NVML call runs
        self._failure_logged = False
        self._thread: CallThread | None = None

    def _on_thread(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        if self._thread is None:
            self._thread = CallThread("telemetry")
        return self._thread.submit(call)

    async def open(self) -> None:
        """Start NVML (on the sampler's thread); without it, say once why there are no GPU figures."""
        try:
            note = await self._on_thread(self._open_probe)
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
            gpus, host = await self._on_thread(self._read)
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
            await self.close()

    async def close(self) -> None:
        """Let NVML go: its shutdown is queued on the thread (after any call still running there) and waited
        for at most `shutdown_wait_s`; a driver that never answers keeps only that daemon thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        shutdown = thread.submit(self._close_probe)
        thread.close()
        done, _ = await asyncio.wait({shutdown}, timeout=self._shutdown_wait_s)
        if not done:
            logger.warning(f"NVML did not shut down within {self._shutdown_wait_s:g} s; the worker goes on without it")
            shutdown.cancel()
        elif shutdown.exception() is not None:
            logger.opt(exception=shutdown.exception()).warning("Shutting NVML down failed")

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
