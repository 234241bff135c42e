"""Slots per GPU from the configuration, and the errors an operator gets when it does not fit the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.config.sections import GpuDeviceSettings
from horde_worker_regen.devices.discovery import DeviceInfo
from horde_worker_regen.devices.plan import PIXELS_PER_POWER, plan_slots, served_by_some_slot

DEVICES = [DeviceInfo(0, "Card A", 24_000, 23_000), DeviceInfo(1, "Card B", 8_000, 7_500)]
SERVED = ["Deliberate", "Dreamshaper"]


def test_without_a_gpu_the_slots_run_on_the_cpu_as_before() -> None:
    plans = plan_slots(BridgeData(max_threads=3), [], SERVED)
    assert [plan.device for plan in plans] == [None, None, None]


def test_every_gpu_found_gets_max_threads_slots_by_default() -> None:
    plans = plan_slots(BridgeData(max_threads=2), DEVICES, SERVED)
    assert [plan.device.index for plan in plans if plan.device] == [0, 0, 1, 1]


def test_selected_gpus_and_overrides_apply() -> None:
    data = BridgeData(
        max_threads=1,
        max_power=32,
        gpu_device_indices=[1, 0],
        gpu_device_overrides={1: GpuDeviceSettings(max_threads=2, max_power=8, models_to_load=["Deliberate"])},
    )
    plans = plan_slots(data, DEVICES, SERVED)
    assert [plan.device.index for plan in plans if plan.device] == [1, 1, 0]
    assert plans[0].allowed_models == frozenset({"Deliberate"}) and plans[0].max_pixels == 8 * PIXELS_PER_POWER
    assert plans[2].allowed_models is None and plans[2].max_pixels is None


def test_an_unknown_index_names_what_was_found() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_slots(BridgeData(gpu_device_indices=[0, 3]), DEVICES, SERVED)
    assert "gpu_device_indices: there is no GPU 3; found: GPU 0 (Card A, 24000 MB), GPU 1 (Card B, 8000 MB)" in str(
        caught.value
    )


def test_gpu_settings_on_a_machine_without_a_gpu_are_an_error_not_a_silent_cpu_run() -> None:
    with pytest.raises(ConfigError, match="no GPU was found"):
        plan_slots(BridgeData(gpu_device_indices=[0]), [], SERVED)


def test_a_per_gpu_model_that_is_not_served_is_named() -> None:
    data = BridgeData(gpu_device_overrides={1: GpuDeviceSettings(models_to_load=["Deliberate", "Nope"])})
    with pytest.raises(ConfigError, match=r"GPU 1 models_to_load \['Nope'\] are not among the served models"):
        plan_slots(data, DEVICES, SERVED)


def test_a_model_only_on_gpus_below_the_worker_max_power_is_named() -> None:
    # The horde is told max_power 32; Dreamshaper may run only on GPU 1, limited to 8: it would fault.
    data = BridgeData(
        max_power=32,
        gpu_device_overrides={
            0: GpuDeviceSettings(models_to_load=["Deliberate"]),
            1: GpuDeviceSettings(max_power=8, models_to_load=["Deliberate", "Dreamshaper"]),
        },
    )
    with pytest.raises(ConfigError) as caught:
        plan_slots(data, DEVICES, SERVED)
    message = str(caught.value)
    assert "'Dreamshaper' may run only on GPU 1 max_power 8, below the worker's max_power 32" in message
    assert "raise those overrides' max_power or lower max_power" in message
    assert "'Deliberate'" not in message  # GPU 0 runs it at full size
    data.gpu_device_overrides[1] = GpuDeviceSettings(max_power=32, models_to_load=["Deliberate", "Dreamshaper"])
    assert len(plan_slots(data, DEVICES, SERVED)) == 2


def test_only_models_some_slot_may_run_are_offered() -> None:
    data = BridgeData(
        gpu_device_overrides={
            0: GpuDeviceSettings(models_to_load=["Dreamshaper"]),
            1: GpuDeviceSettings(models_to_load=["Dreamshaper"]),
        }
    )
    assert served_by_some_slot(SERVED, plan_slots(data, DEVICES, SERVED)) == ["Dreamshaper"]
    assert served_by_some_slot(SERVED, plan_slots(BridgeData(), DEVICES, SERVED)) == SERVED


def _problems(tmp_path: Path, settings: dict[str, object], environ: dict[str, str] | None = None) -> str:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {}, {})
    return str(caught.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"gpu_device_indices": [0, 0]}, "each GPU index may appear once; got [0, 0]"),
        ({"gpu_device_indices": []}, "leave gpu_device_indices out to use every GPU found"),
        ({"gpu_device_indices": [-1]}, "gpu_device_indices.0: -1 is not valid"),
        (
            {"gpu_device_indices": [0], "gpu_device_overrides": {2: {"max_threads": 2}}},
            "GPU 2 is not in gpu_device_indices [0]",
        ),
        ({"gpu_device_overrides": {0: {"max_threads": 40}}}, "gpu_device_overrides.0.max_threads: 40 is not valid"),
        ({"gpu_device_overrides": {0: {"max_power": 64}}}, "GPU 0 max_power 64 is above the worker's max_power 8"),
        ({"gpu_device_overrides": {0: {"threads": 2}}}, "gpu_device_overrides.0.threads"),
        (
            {"fake_backend": {"devices": [{"name": "x", "vram_mb": 10}]}},
            "fake_backend.devices.0.vram_mb: 10 is not valid",
        ),
    ],
)
def test_bad_gpu_settings_name_the_key_and_value(tmp_path: Path, settings: dict[str, object], expected: str) -> None:
    assert expected in _problems(tmp_path, settings)


def test_gpu_settings_from_env_vars(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    environ = {
        "AIWORKER_API_KEY": "abcdefghijklmnopqrstuv",
        "AIWORKER_GPU_DEVICE_INDICES": "0,1",
        "AIWORKER_GPU_DEVICE_OVERRIDES": "{1: {max_threads: 2, models_to_load: [Deliberate]}}",
    }
    data = load_config(path, environ, {}).data
    assert data.gpu_device_indices == [0, 1]
    assert data.gpu_device_overrides[1].max_threads == 2
    assert data.gpu_device_overrides[1].models_to_load == ["Deliberate"]
