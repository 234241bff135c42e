"""Finding the GPUs, in a short-lived spawned child so that the main process never loads CUDA or torch.

NVML (pynvml) is asked first: it is light and reports free memory without creating a CUDA context.
Without it, torch.cuda is asked. Indexes are CUDA indexes in PCI bus order (`CUDA_DEVICE_ORDER=
PCI_BUS_ID`, which NVML also uses), so the index an operator reads in nvidia-smi is the one to configure
and the one each inference child is pinned to. No GPU, or no driver: an empty list (the worker runs on
the CPU). The fake backend's simulated GPUs replace discovery when configured.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import warnings
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.config.bridge_data import FakeBackendSettings

DISCOVERY_TIMEOUT_S = 60.0
MB = 1024 * 1024


@dataclass(frozen=True)
class DeviceInfo:
    """One GPU as found at start-up (memory in MB)."""

    index: int
    name: str
    total_mb: int
    free_mb: int

    def describe(self) -> str:
        """`GPU 0 (NVIDIA RTX 4090, 24564 MB)`."""
        return f"GPU {self.index} ({self.name}, {self.total_mb} MB)"


def probe_nvml() -> list[DeviceInfo] | None:
    """Every GPU NVML sees; None when NVML is not importable or has no driver to talk to."""
    try:
        with warnings.catch_warnings():  # the `pynvml` shim warns that `nvidia-ml-py` provides it now
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            found.append(DeviceInfo(index, name, int(memory.total) // MB, int(memory.free) // MB))
        return found
    finally:
        pynvml.nvmlShutdown()


def probe_torch() -> list[DeviceInfo]:
    """Every GPU torch.cuda sees (imports torch: only ever called in a child process)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        found.append(DeviceInfo(index, torch.cuda.get_device_name(index), int(total) // MB, int(free) // MB))
    return found


def probe_devices() -> list[DeviceInfo]:
    """The child's work: NVML if it answers, else torch.cuda."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    found = probe_nvml()
    return found if found is not None else probe_torch()


def discover_devices(timeout: float = DISCOVERY_TIMEOUT_S) -> list[DeviceInfo]:
    """The GPUs of this machine, asked in a spawned child that exits straight after."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(probe_devices).result(timeout=timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.process.BrokenProcessPool, OSError) as error:
            logger.warning(f"GPU discovery failed ({type(error).__name__}: {error}); running on the CPU")
            return []


def fake_devices(settings: FakeBackendSettings) -> list[DeviceInfo]:
    """The fake backend's simulated GPUs, numbered in the order they are configured."""
    return [DeviceInfo(index, device.name, device.vram_mb, device.vram_mb)
            for index, device in enumerate(settings.devices)]
