"""GPU discovery in a spawned child, pinning, and the simulated GPUs of the fake backend."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from horde_worker_regen.config.sections import FakeBackendSettings, FakeDevice
from horde_worker_regen.devices.discovery import DeviceInfo, discover_devices, fake_devices
from horde_worker_regen.devices.pinning import pin_to_device, report_fake_device
from tests.support import REPO_ROOT


def test_discovery_runs_in_a_child_and_leaves_the_main_process_without_torch() -> None:
    # Whatever this machine has (no GPU here: an empty list), the answer comes from a spawned child.
    script = (
        "import sys\nfrom horde_worker_regen.devices.discovery import discover_devices\n"
        "found = discover_devices()\nprint(all(d.total_mb > 0 for d in found), len(found))\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    sane, torch_loaded = result.stdout.strip().splitlines()[-2:]
    assert sane.startswith("True ")
    assert torch_loaded == "False"


def probe_reporting_its_pid() -> list[DeviceInfo]:
    """A probe whose answer says which process ran it."""
    return [DeviceInfo(0, f"pid {os.getpid()}", 1, 1)]


def probe_that_hangs() -> list[DeviceInfo]:
    """A probe stuck like a wedged driver call."""
    threading.Event().wait()
    return []


def test_the_probe_runs_in_another_process() -> None:
    found = discover_devices(timeout=60, probe=probe_reporting_its_pid)
    assert len(found) == 1
    assert found[0].name.startswith("pid ")
    assert found[0].name != f"pid {os.getpid()}"
    assert not multiprocessing.active_children()


def test_a_hung_probe_is_killed_and_the_worker_runs_on_the_cpu() -> None:
    started = time.monotonic()
    assert discover_devices(timeout=2.0, probe=probe_that_hangs) == []
    assert time.monotonic() - started < 15  # the child's start-up plus the timeout, not the hang
    assert not multiprocessing.active_children()


def test_pinning_sets_the_cuda_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    pin_to_device(2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_fake_devices_are_numbered_in_order_and_report_themselves() -> None:
    settings = FakeBackendSettings(
        devices=[FakeDevice(name="Big", vram_mb=16_000), FakeDevice(name="Small", vram_mb=4_000)]
    )
    assert fake_devices(settings) == [DeviceInfo(0, "Big", 16_000, 16_000), DeviceInfo(1, "Small", 4_000, 4_000)]
    report = report_fake_device(settings, 1)
    assert report.describe() == "GPU 1 (Small, 4000 of 4000 MB free)"
    with pytest.raises(ValueError, match="there is no GPU 2"):
        report_fake_device(settings, 2)
