"""Model plans from the reference, the verified-file manifest, custom models, fetching what is missing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.custom import custom_models_path, write_custom_models
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.files import files_of
from horde_worker_regen.models.manifest import VerifiedManifest
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.models.store import ModelStore, ensure_all, plans_for
from tests.models.file_server import ServedFile, file_server

BODY = b"checkpoint bytes " * 1000
SHA = hashlib.sha256(BODY).hexdigest()


def entry(url: str, sha: str = SHA, name: str = "m.safetensors") -> dict[str, Any]:
    return {
        "name": "M",
        "baseline": "stable diffusion 1",
        "size_on_disk_bytes": len(BODY),
        "config": {
            "files": [{"path": name, "sha256sum": sha}, {"path": "v1-inference.yaml"}],
            "download": [{"file_name": name, "file_path": "", "file_url": url}],
        },
    }


def bridge(tmp_path: Path, reference: dict[str, Any], **settings: Any) -> BridgeData:
    paths = ReferencePaths(tmp_path)
    paths.reference.parent.mkdir(parents=True, exist_ok=True)
    paths.reference.write_text(json.dumps(reference))
    return BridgeData(api_key="k" * 22, cache_home=tmp_path, **settings)


def test_files_of_keeps_downloads_with_their_hash_and_refuses_escapes() -> None:
    files = files_of(entry("https://x/m"))
    assert [(f.relative_path, f.sha256) for f in files] == [("m.safetensors", SHA)]
    assert files_of(entry("https://x/m", name="../../etc/passwd")) == ()
    assert files_of({"config": "nonsense"}) == ()


def test_manifest_trusts_an_unchanged_file_only(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(BODY)
    manifest = VerifiedManifest(tmp_path / "manifest.json")
    manifest.record(path, SHA)
    assert VerifiedManifest(tmp_path / "manifest.json").is_verified(path, SHA)
    assert not manifest.is_verified(path, "1" * 64)
    path.write_bytes(BODY + b"!")
    assert not VerifiedManifest(tmp_path / "manifest.json").is_verified(path, SHA)


def test_two_manifests_of_one_file_keep_each_other_s_entries(tmp_path: Path) -> None:
    images, post_processors = VerifiedManifest(tmp_path / "m.json"), VerifiedManifest(tmp_path / "m.json")
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    images.record(tmp_path / "a", "1" * 64)
    post_processors.record(tmp_path / "b", "2" * 64)  # read before `a` was recorded: must not drop it
    again = VerifiedManifest(tmp_path / "m.json")
    assert again.is_verified(tmp_path / "a", "1" * 64) and again.is_verified(tmp_path / "b", "2" * 64)


async def test_missing_model_is_downloaded_then_ready_without_rehashing(tmp_path: Path) -> None:
    served = ServedFile(BODY)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        data = bridge(tmp_path, {"M": entry(f"{base}/m"), "Plain": {"name": "Plain"}})
        store = ModelStore(tmp_path, Downloader(session))
        plans = plans_for(data, ["M", "Plain"])
        assert [store.is_ready(plan) for plan in plans] == [False, True]
        ready: list[str] = []
        assert await ensure_all(store, plans, ready.append) == {}
    assert ready == ["M", "Plain"]
    assert (tmp_path / "compvis" / "m.safetensors").read_bytes() == BODY
    assert ModelStore(tmp_path, Downloader(session)).is_ready(plans[0])  # a fresh start trusts the manifest


async def test_a_file_already_on_disk_is_hashed_once_not_downloaded(tmp_path: Path) -> None:
    served = ServedFile(BODY)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        data = bridge(tmp_path, {"M": entry(f"{base}/m")})
        (tmp_path / "compvis").mkdir()
        (tmp_path / "compvis" / "m.safetensors").write_bytes(BODY)
        store = ModelStore(tmp_path, Downloader(session))
        assert await store.ensure(plans_for(data, ["M"])[0]) is None
    assert served.requests == []
    assert store.is_ready(plans_for(data, ["M"])[0])


async def test_a_wrong_checksum_keeps_the_model_unoffered(tmp_path: Path) -> None:
    async with file_server({"/m": ServedFile(BODY)}) as base, aiohttp.ClientSession() as session:
        data = bridge(tmp_path, {"M": entry(f"{base}/m", sha="ab" * 32)})
        ready: list[str] = []
        failures = await ensure_all(ModelStore(tmp_path, Downloader(session)), plans_for(data, ["M"]), ready.append)
    assert ready == []
    assert "sha256" in failures["M"]


async def test_custom_models_are_written_with_absolute_paths_and_never_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "mine.safetensors"
    checkpoint.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    data = bridge(
        tmp_path, {}, custom_models=[{"name": "Mine", "baseline": "stable_diffusion_1", "filepath": "mine.safetensors"}]
    )
    path = write_custom_models(data)
    assert path == custom_models_path(tmp_path)
    written = json.loads(path.read_text())
    assert written["Mine"]["config"]["files"][0]["path"] == str(checkpoint.resolve())
    assert written["Mine"]["baseline"] == "stable diffusion 1"
    async with aiohttp.ClientSession() as session:
        store = ModelStore(tmp_path, Downloader(session))
        assert store.is_ready(plans_for(data, ["Mine"])[0])
        assert await store.ensure(plans_for(data, ["Mine"])[0]) is None
    assert not (tmp_path / "verified_models.json").exists()
