"""The fake backend on a simulated GPU: pinned, reporting its device, refusing a model too big for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from horde_worker_regen.config.sections import FakeBackendSettings, FakeDevice
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.inference.backend import InferenceError
from horde_worker_regen.inference.fake import FakeInferenceBackend
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.inference_child import InferenceChildConfig, pin_and_report

SETTINGS = FakeBackendSettings(
    devices=[FakeDevice(name="Sim A", vram_mb=8_000), FakeDevice(name="Sim B", vram_mb=4_000)],
    model_vram_mb={"Big": 6_000},
    default_model_vram_mb=2_000,
)


def _spec(model: str) -> GenerationSpec:
    return GenerationSpec("job", model, "a fox", 64, 64, 1, 1, 1, "k_euler", 5.0, True, None, (), "txt2img")


def test_a_model_larger_than_the_simulated_gpu_fails_as_out_of_memory() -> None:
    with pytest.raises(InferenceError, match=r"out of memory on simulated GPU 1 \(Sim B\): 'Big' needs 6000 MB"):
        FakeInferenceBackend(SETTINGS, device_index=1).generate(_spec("Big"), JobInputs())
    assert len(FakeInferenceBackend(SETTINGS, device_index=0).generate(_spec("Big"), JobInputs())) == 1
    assert len(FakeInferenceBackend(SETTINGS, device_index=1).generate(_spec("Small"), JobInputs())) == 1


def test_the_child_pins_itself_and_reports_its_simulated_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = InferenceChildConfig(ChildLogging(tmp_path, 0, 1), "fake", SETTINGS, device_index=1)
    assert pin_and_report(config) == DeviceReport(1, "Sim B", 4_000, 4_000)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    on_cpu = InferenceChildConfig(ChildLogging(tmp_path, 0, 2), "fake", SETTINGS)
    assert pin_and_report(on_cpu) is None
