"""Every bridgeData key of the official worker is accepted, with its meaning and default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from horde_worker_regen.commands.check_config import render_config
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.config.roles import ALCHEMIST_KEYS, SCRIBE_KEYS
from tests.support import TEMPLATE

# The documented keys (feature-bar table) with their official defaults, where one is fixed.
DOCUMENTED_DEFAULTS: dict[str, Any] = {
    "horde_url": "https://aihorde.net/api/",
    "dreamer_name": "An Awesome Dreamer",
    "priority_usernames": [],
    "max_threads": 1,
    "queue_size": 1,
    "max_batch": 1,
    "max_power": 8,
    "safety_on_gpu": False,
    "require_upfront_kudos": False,
    "nsfw": True,
    "censor_nsfw": False,
    "censorlist": [],
    "blacklist": [],
    "allow_img2img": True,
    "allow_painting": True,
    "allow_post_processing": True,
    "allow_controlnet": False,
    "allow_sdxl_controlnet": False,
    "allow_lora": False,
    "allow_unsafe_ip": True,
    "allow_private_source_urls": False,
    "extra_slow_worker": False,
    "limit_max_steps": False,
    "models_to_load": [],
    "models_to_skip": [],
    "load_large_models": False,
    "custom_models": [],
    "cache_home": Path("./models/"),
    "max_lora_cache_size": 10,
    "purge_loras_on_download": False,
    "high_memory_mode": False,
    "very_high_memory_mode": False,
    "high_performance_mode": False,
    "moderate_performance_mode": False,
    "very_fast_disk_mode": False,
    "post_process_job_overlap": False,
    "unload_models_from_vram_often": True,
    "cycle_process_on_model_change": False,
    "process_timeout": 300,
    "preload_timeout": 80,
    "download_timeout": 121,
    "post_process_timeout": 60,
    "inference_step_timeout": 15,
    "minutes_allowed_without_jobs": 30,
    "stats_output_frequency": 30,
    "suppress_speed_warnings": False,
    "limited_console_messages": False,
    "remove_maintenance_on_init": False,
    "exit_on_unhandled_faults": False,
    "horde_model_stickiness": 0.0,
    "capture_kudos_training_data": False,
}
DOCUMENTED_WITHOUT_FIXED_DEFAULT = [
    "api_key",
    "civitai_api_token",
    "kudos_training_data_file",
    "dynamic_models",
    "number_of_dynamic_models",
    "max_models_to_download",
    "ram_to_leave_free",
    "vram_to_leave_free",
    "disable_terminal_ui",
    "temp_dir",
    "always_download",
    "disable_disk_cache",
]

# A non-default value per key, used to prove each key is read and lands where it should.
NON_DEFAULT_VALUES: dict[str, Any] = {
    "horde_url": "http://127.0.0.1:7001/api/",
    "api_key": "abcdefghijklmnopqrstuv",
    "dreamer_name": "Round Trip Dreamer",
    "priority_usernames": ["db0#1", "someone#4242"],
    "max_threads": 2,
    "queue_size": 3,
    "max_batch": 8,
    "max_power": 64,
    "safety_on_gpu": True,
    "gpu_device_indices": [0, 2],
    "gpu_device_overrides": {2: {"max_threads": 2, "max_power": 8, "models_to_load": ["Deliberate"]}},
    "require_upfront_kudos": True,
    "nsfw": False,
    "censor_nsfw": True,
    "censorlist": ["badword"],
    "blacklist": ["spider", "clown"],
    "allow_img2img": False,
    "allow_painting": False,
    "allow_post_processing": False,
    "post_processor_sources": {
        "4xNomos8kSC": {
            "url": "http://cache.lan/4xNomos8kSC.pth",
            "sha256": "07a7ccd6443d012d528999cd77e40c7d265aaf1f656c499b37936e49603a0b1d",
        },
        "face_detection": {"url": "https://mirror.example/detection_Resnet50_Final.pth", "sha256": None},
    },
    "allow_controlnet": True,
    "allow_sdxl_controlnet": True,
    "allow_lora": True,
    "allow_unsafe_ip": False,
    "allow_private_source_urls": True,
    "extra_slow_worker": True,
    "limit_max_steps": True,
    "models_to_load": ["ALL SDXL", "Deliberate"],
    "models_to_skip": ["TOP 1"],
    "load_large_models": True,
    "custom_models": [{"name": "My Model", "baseline": "stable_diffusion_xl", "filepath": "/srv/my.safetensors"}],
    "cache_home": "/srv/horde-models",
    "spool_dir": "/srv/horde-spool",
    "max_lora_cache_size": 50,
    "civitai_api_token": "token-abcdef-123",
    "purge_loras_on_download": True,
    "high_memory_mode": True,
    "very_high_memory_mode": True,
    "high_performance_mode": True,
    "moderate_performance_mode": False,
    "very_fast_disk_mode": True,
    "post_process_job_overlap": True,
    "unload_models_from_vram_often": False,
    "cycle_process_on_model_change": True,
    "process_timeout": 600,
    "preload_timeout": 120,
    "download_timeout": 200,
    "post_process_timeout": 90,
    "inference_step_timeout": 45,
    "job_retries": 2,
    "quarantine_model_after_strikes": 3,
    "fault_breaker_cooldown": 15,
    "recycle_process_after_jobs": 50,
    "recycle_process_above_rss_mib": 8192,
    "minutes_allowed_without_jobs": 5,
    "stats_output_frequency": 10,
    "suppress_speed_warnings": True,
    "limited_console_messages": True,
    "remove_maintenance_on_init": True,
    "exit_on_unhandled_faults": True,
    "horde_backoff_cap": 5.0,
    "idle_pop_interval": 2.5,
    "horde_model_stickiness": 0.5,
    "capture_kudos_training_data": True,
    "kudos_training_data_file": "/srv/kudos.json",
    "dynamic_models": True,
    "number_of_dynamic_models": 3,
    "max_models_to_download": 5,
    "ram_to_leave_free": "50%",
    "vram_to_leave_free": "2048",
    "disable_terminal_ui": False,
    "temp_dir": "/tmp/worker",
    "always_download": False,
    "disable_disk_cache": True,
    "inference_backend": "fake",
    "safety_backend": "fake",
    "fake_backend": {
        "seconds_per_step": 0.01,
        "seconds_per_image": 0.5,
        "seconds_per_job": 0.2,
        "fail_marker": "FAILME",
        "crash_marker": "CRASHME",
        "download_models": True,
        "devices": [{"name": "Sim", "vram_mb": 4096}],
        "model_vram_mb": {"Deliberate": 3000},
        "default_model_vram_mb": 2000,
        "hang_marker": "HANGME",
        "hang_once_marker": "HANG1ME",
        "slow_marker": "SLOWME",
        "slow_seconds": 2.0,
        "seconds_per_load": 0.5,
        "seconds_per_form": 0.25,
        "failing_post_processors": ["RealESRGAN_x2plus"],
        "poison_models": ["Bad Model"],
        "missing_models": ["Gone Model"],
        "fail_start_from_incarnation": 7,
        "memory_growth_mib_per_job": 4,
    },
    "fake_safety": {"nsfw_marker": "NSFWME", "csam_marker": "CSAMME"},
    "dashboard_enabled": False,
    "dashboard_host": "::1",
    "dashboard_port": 8080,
    "dashboard_token": "a-dashboard-token-of-length",
    "telemetry_interval": 2.5,
    "scribe_name": "Round Trip Scribe",
    "kai_url": "http://127.0.0.1:5001",
    "max_length": 120,
    "max_context_length": 2048,
    "branded_model": False,
    "dreamer": True,
    "alchemist": True,
    "alchemist_name": "Round Trip Alchemist",
    "forms": ["caption", "strip_background"],
    "alchemy_caption_enabled": True,
    "alchemy_allow_concurrent": False,
    "alchemy_max_concurrency": 2,
    "alchemy_vram_headroom_mb": 4096,
}


def _plain(value: Any) -> Any:
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "model_dump"):
        return {key: _plain(item) for key, item in value.model_dump().items()}
    return value


def test_every_documented_key_is_a_field() -> None:
    documented = set(DOCUMENTED_DEFAULTS) | set(DOCUMENTED_WITHOUT_FIXED_DEFAULT)
    assert documented <= set(BridgeData.model_fields)
    assert set(NON_DEFAULT_VALUES) == set(BridgeData.model_fields)


@pytest.mark.parametrize(("key", "default"), sorted(DOCUMENTED_DEFAULTS.items()))
def test_defaults_match_the_official_worker(key: str, default: Any) -> None:
    assert getattr(BridgeData(), key) == default


def test_template_parses_and_sets_every_key(clean_env: None) -> None:
    resolved = load_config(TEMPLATE, {})
    written = set(yaml.safe_load(TEMPLATE.read_text()))
    commented = {"civitai_api_token", "kudos_training_data_file", "dashboard_token"}
    compat_only = {
        "dynamic_models",
        "number_of_dynamic_models",
        "max_models_to_download",
        "ram_to_leave_free",
        "vram_to_leave_free",
        "disable_terminal_ui",
        "temp_dir",
        "always_download",
        "disable_disk_cache",
    }
    other_roles = set(SCRIBE_KEYS) | set(ALCHEMIST_KEYS) | {"dreamer"}  # described in comments, not written
    assert written == set(BridgeData.model_fields) - commented - compat_only - other_roles
    assert resolved.data.models_to_load == ["TOP 2"]
    assert resolved.data.dreamer_name == "An Awesome Dreamer"


@pytest.mark.parametrize("key", sorted(NON_DEFAULT_VALUES))
def test_each_key_round_trips_through_a_file(key: str, tmp_path: Path, clean_env: None) -> None:
    value = NON_DEFAULT_VALUES[key]
    path = tmp_path / "bridgeData.yaml"
    extra = {"allow_controlnet": True} if key == "allow_sdxl_controlnet" else {}
    path.write_text(yaml.safe_dump({key: value, **extra}))
    resolved = load_config(path, {})
    loaded = _plain(getattr(resolved.data, key))
    if key == "cache_home" or key.endswith(("_file", "_dir")):
        assert loaded == str(Path(value))
    else:
        assert loaded == value
    assert resolved.source_of(key) == "file bridgeData.yaml"


def test_check_config_output_reads_back_as_the_same_settings(tmp_path: Path, clean_env: None) -> None:
    # A redacted dashboard_token is too short to be one: the read-back is checked without it.
    values = {k: v for k, v in NON_DEFAULT_VALUES.items() if k not in ("moderate_performance_mode", "dashboard_token")}
    source = tmp_path / "bridgeData.yaml"
    source.write_text(yaml.safe_dump(values))
    first = load_config(source, {})
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render_config(first))
    second = load_config(rendered, {})
    for key in BridgeData.model_fields:
        if key in ("api_key", "civitai_api_token"):
            continue  # redacted on output, by design
        assert _plain(getattr(second.data, key)) == _plain(getattr(first.data, key)), key


@pytest.mark.parametrize(
    ("alias", "field", "value"),
    [
        ("dreamer_worker_name", "dreamer_name", "Alias Dreamer"),
        ("worker_name", "dreamer_name", "Other Alias Dreamer"),
        ("allow_inpainting", "allow_painting", False),
        ("image_models_to_load", "models_to_load", ["Deliberate"]),
        ("image_models_to_skip", "models_to_skip", ["ALL SDXL"]),
        ("models_folder_parent", "cache_home", "/data/models"),
        ("CIVIT_API_TOKEN", "civitai_api_token", "civit-token-xyz"),
        ("model_stickiness", "horde_model_stickiness", 0.25),
    ],
)
def test_each_alias_sets_its_field(alias: str, field: str, value: Any, tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(yaml.safe_dump({alias: value}))
    loaded = _plain(getattr(load_config(path, {}).data, field))
    assert loaded == (str(Path(value)) if field == "cache_home" else value)


def test_max_pixels_follows_max_power() -> None:
    assert BridgeData(max_power=8).max_pixels == 512 * 512
    assert BridgeData(max_power=32).max_pixels == 1024 * 1024
