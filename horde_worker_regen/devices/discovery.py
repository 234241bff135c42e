"""Finding the GPUs, in a short-lived spawned child so that the main process never loads CUDA or torch.

NVML (pynvml) is asked first: it is light and reports free memory without creating a CUDA context.
Without it, torch.cuda is asked. Indexes are CUDA indexes in PCI bus order (`CUDA_DEVICE_ORDER=
PCI_BUS_ID`, which NVML also uses), so the index an operator reads in nvidia-smi is the one to configure
and the one each inference child is pinned to. No GPU, or no driver: an empty list (the worker runs on
the CPU). The fake backend's simulated GPUs replace discovery when configured.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from loguru import logger

from horde_worker_regen.config.sections import FakeBackendSettings

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


def _probe_child(probe: Callable[[], list[DeviceInfo]], answer: Connection) -> None:
    """The spawned child: run the probe, send its answer (or its error), exit."""
    try:
        answer.send(probe())
    except Exception as error:  # the parent reports it and runs on the CPU
        answer.send(error)
    finally:
        answer.close()


def discover_devices(
    timeout: float = DISCOVERY_TIMEOUT_S, probe: Callable[[], list[DeviceInfo]] = probe_devices
) -> list[DeviceInfo]:
    """The GPUs of this machine, asked in a spawned child that exits straight after.

    A child that does not answer within `timeout` (a wedged driver) is killed and the worker runs on
    the CPU: waiting on it would hang the start. `probe` must be picklable (a module-level function).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_probe_child, args=(probe, send), name="gpu-discovery", daemon=True)
    child.start()
    send.close()
    try:
        answer: object = receive.recv() if receive.poll(timeout) else None
    except (EOFError, OSError) as error:
        answer = error
    finally:
        receive.close()
        child.join(1.0 if answer is not None else 0)
        if child.is_alive():
            child.kill()
            child.join()
    if answer is None:
        logger.warning(
            f"GPU discovery did not answer within {timeout:.0f}s and was killed; running on the CPU "
            "(check the GPU driver with nvidia-smi)"
        )
        return []
    if isinstance(answer, BaseException):
        logger.warning(f"GPU discovery failed ({type(answer).__name__}: {answer}); running on the CPU")
        return []
    assert isinstance(answer, list)
    return answer


def fake_devices(settings: FakeBackendSettings) -> list[DeviceInfo]:
    """The fake backend's simulated GPUs, numbered in the order they are configured."""
    return [
        DeviceInfo(index, device.name, device.vram_mb, device.vram_mb) for index, device in enumerate(settings.devices)
    ]
