"""The start-up disk check: image models and post-processors still to download, against the free space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from horde_worker_regen.commands.startup_checks import check_startup
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.disk_need import disk_need, existing_folder
from horde_worker_regen.models.downloads import DISK_MARGIN_BYTES, DiskUsage
from horde_worker_regen.models.post_processor_files import BY_NAME, FACE_HELPER_FILES, LEVEL_13_MODELS, U2NET
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.shared.environment import REFERENCE_URL_ENV
from tests.models.post_processor_mirror import install_post_processing_references

IMAGE_BYTES = 2_000_000_000
EVERY_POST_PROCESSOR_BYTE = (
    sum(model.file.size or 0 for model in LEVEL_13_MODELS)
    + sum(file.size or 0 for file in FACE_HELPER_FILES)
    + (U2NET.size or 0)  # strip_background's rembg model
)


def _reference(cache_home: Path) -> None:
    entry: dict[str, Any] = {
        "name": "Big One",
        "baseline": "stable diffusion 1",
        "size_on_disk_bytes": IMAGE_BYTES,
        "config": {
            "files": [{"path": "big.safetensors", "sha256sum": "a" * 64}],
            "download": [{"file_name": "big.safetensors", "file_path": "", "file_url": "http://127.0.0.1:9/big"}],
        },
    }
    paths = ReferencePaths(cache_home)
    paths.reference.parent.mkdir(parents=True, exist_ok=True)
    paths.reference.write_text(json.dumps({"Big One": entry}))


def _free(free: int) -> Any:
    return lambda folder: DiskUsage(10 * free, 9 * free, free)


def _data(cache_home: Path, **settings: Any) -> BridgeData:
    install_post_processing_references(cache_home)
    return BridgeData(api_key="k" * 22, dreamer_name="Disk Checker", cache_home=cache_home, **settings)


def test_it_counts_the_missing_image_models_and_post_processors(tmp_path: Path) -> None:
    _reference(tmp_path)
    need = disk_need(_data(tmp_path), ["Big One"], disk_usage=_free(100 * 2**30))
    assert (need.image_model_bytes, need.post_processor_bytes) == (IMAGE_BYTES, EVERY_POST_PROCESSOR_BYTE)
    assert need.fits and need.folder == tmp_path.absolute()
    assert "post-processors 1.3 GB" in need.describe()


def test_files_on_disk_or_partly_there_count_what_is_left(tmp_path: Path) -> None:
    _reference(tmp_path)
    (tmp_path / "compvis").mkdir()
    (tmp_path / "compvis" / "big.safetensors.partial").write_bytes(bytes(1000))
    upscaler = BY_NAME["4xNomos8kSC"].file.path_under(tmp_path)
    upscaler.parent.mkdir()
    upscaler.write_bytes(b"on disk: it is only hashed")
    need = disk_need(_data(tmp_path), ["Big One"], disk_usage=_free(100 * 2**30))
    assert need.image_model_bytes == IMAGE_BYTES - 1000
    assert need.post_processor_bytes == EVERY_POST_PROCESSOR_BYTE - (BY_NAME["4xNomos8kSC"].file.size or 0)


def test_skipped_or_disallowed_post_processors_count_nothing(tmp_path: Path) -> None:
    off = disk_need(_data(tmp_path, allow_post_processing=False), [], disk_usage=_free(2**30))
    assert off.post_processor_bytes == 0 and off.bytes_to_download == 0 and off.fits
    upscalers_only = _data(tmp_path, models_to_skip=["GFPGANv1.3", "RestoreFormer", "strip_background"])
    need = disk_need(upscalers_only, [], disk_usage=_free(2**30))
    assert need.post_processor_bytes == sum(m.file.size or 0 for m in LEVEL_13_MODELS if m.kind == "upscaler")
    background_only = _data(tmp_path, models_to_skip=[model.name for model in LEVEL_13_MODELS])
    assert disk_need(background_only, [], disk_usage=_free(2**30)).post_processor_bytes == U2NET.size


def test_too_little_space_does_not_fit_and_says_what_to_do(tmp_path: Path) -> None:
    just_enough = EVERY_POST_PROCESSOR_BYTE + DISK_MARGIN_BYTES
    assert disk_need(_data(tmp_path), [], disk_usage=_free(just_enough)).fits
    short = disk_need(_data(tmp_path), [], disk_usage=_free(just_enough - 1))
    assert not short.fits
    assert "Not all of it fits" in short.describe() and "move cache_home" in short.describe()


def test_a_backend_that_reads_no_files_needs_nothing(tmp_path: Path) -> None:
    _reference(tmp_path)
    need = disk_need(_data(tmp_path), ["Big One"], fetch_files=False, disk_usage=_free(1))
    assert need.bytes_to_download == 0 and need.fits


def test_a_cache_home_not_made_yet_is_measured_where_it_will_be(tmp_path: Path) -> None:
    assert existing_folder(tmp_path / "not" / "yet") == tmp_path.absolute()


async def test_the_start_up_checks_count_the_post_processors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    monkeypatch.setenv(REFERENCE_URL_ENV, "http://127.0.0.1:9/none.json")  # offline: the cached reference serves
    _reference(tmp_path)
    data = _data(tmp_path, horde_url="http://127.0.0.1:9/", models_to_load=["Big One"])
    checked = await check_startup(data, lambda selection: None)
    assert checked.selection.models == ["Big One"]
    assert (checked.disk.image_model_bytes, checked.disk.post_processor_bytes) == (
        IMAGE_BYTES,
        EVERY_POST_PROCESSOR_BYTE,
    )
    fake = await check_startup(data.model_copy(update={"inference_backend": "fake"}), lambda selection: None)
    assert fake.disk.bytes_to_download == 0  # the fake backend downloads nothing
