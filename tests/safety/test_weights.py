"""The safety model's files: fetched once over real HTTP (a local server standing in for the hub), and
a clear stop when they cannot be fetched."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from loguru import logger

from horde_worker_regen.safety.horde_safety_backend import scores_from
from horde_worker_regen.safety.weights import (
    CLIP_WEIGHTS_NAME,
    LABEL_TABLES,
    STAND_IN,
    WEIGHTS_ENV_VAR,
    SafetyWeightsUnavailable,
    ensure_safety_weights,
    label_cache_name,
    prepare_safety_backend,
    required_files,
    safety_folder,
    weights_mode,
)


class FakeHub:
    """Serves `/<repo>/resolve/main/<file>` with a body derived from the path; counts the requests."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.missing: set[str] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path] += 1
        if any(request.path.endswith(name) for name in self.missing):
            return web.Response(status=404, text="Entry not found")
        body = (request.path.encode() + b"\n") * 50_000  # several chunks
        return web.Response(body=body)


@pytest.fixture
async def hub(aiohttp_server: object) -> AsyncIterator[tuple[FakeHub, str]]:
    fake = FakeHub()
    app = web.Application()
    app.router.add_get("/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)  # type: ignore[operator]
    yield fake, str(server.make_url("")).rstrip("/")


async def test_every_missing_file_is_downloaded_once(tmp_path: Path, hub: tuple[FakeHub, str]) -> None:
    fake, endpoint = hub
    folder = await ensure_safety_weights(tmp_path, endpoint=endpoint)
    assert folder == safety_folder(tmp_path, "download") == tmp_path.resolve() / "clip_blip"
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted([CLIP_WEIGHTS_NAME, *(label_cache_name(table) for table in LABEL_TABLES)])
    served_path = b"/timm/vit_large_patch14_clip_224.openai/resolve/main/open_clip_pytorch_model.bin\n"
    assert (folder / CLIP_WEIGHTS_NAME).read_bytes() == served_path * 50_000
    assert sum(fake.requests.values()) == 7

    await ensure_safety_weights(tmp_path, endpoint=endpoint)  # second start: nothing fetched
    assert sum(fake.requests.values()) == 7


async def test_only_the_missing_files_are_fetched(tmp_path: Path, hub: tuple[FakeHub, str]) -> None:
    fake, endpoint = hub
    folder = safety_folder(tmp_path, "download")
    folder.mkdir(parents=True)
    (folder / CLIP_WEIGHTS_NAME).write_bytes(b"already here")
    await ensure_safety_weights(tmp_path, endpoint=endpoint)
    assert (folder / CLIP_WEIGHTS_NAME).read_bytes() == b"already here"
    assert sum(fake.requests.values()) == len(LABEL_TABLES)


async def test_a_file_the_hub_lacks_stops_with_what_to_do(tmp_path: Path, hub: tuple[FakeHub, str]) -> None:
    fake, endpoint = hub
    fake.missing.add(label_cache_name("mediums"))
    with pytest.raises(SafetyWeightsUnavailable) as raised:
        await ensure_safety_weights(tmp_path, endpoint=endpoint)
    message = str(raised.value)
    assert label_cache_name("mediums") in message and "HTTP 404" in message
    assert f"{endpoint}/pharma/ci-preprocess/resolve/main/{label_cache_name('mediums')}" in message
    assert "does not serve without it" in message and str(safety_folder(tmp_path, "download")) in message
    assert not list(safety_folder(tmp_path, "download").glob("*.part"))


async def test_an_unreachable_hub_stops_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SafetyWeightsUnavailable) as raised:
        await ensure_safety_weights(tmp_path, endpoint="http://127.0.0.1:9")
    message = str(raised.value)
    assert CLIP_WEIGHTS_NAME in message and "http://127.0.0.1:9/timm/" in message
    assert "HF_ENDPOINT" in message and "copy the files into" in message


def test_urls_follow_hf_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example/")
    urls = [file.url for file in required_files(tmp_path)]
    assert (
        urls[0]
        == "http://mirror.example/timm/vit_large_patch14_clip_224.openai/resolve/main/open_clip_pytorch_model.bin"
    )
    assert urls[1] == "http://mirror.example/pharma/ci-preprocess/resolve/main/ViT-L-14_openai_artists.safetensors"


def test_weights_mode_is_download_unless_the_stand_in_is_named() -> None:
    assert weights_mode({}) == "download"
    assert weights_mode({WEIGHTS_ENV_VAR: STAND_IN}) == STAND_IN
    with pytest.raises(SafetyWeightsUnavailable, match="not understood"):
        weights_mode({WEIGHTS_ENV_VAR: "random"})


def test_the_stand_in_lives_apart_from_the_real_files(tmp_path: Path) -> None:
    assert safety_folder(tmp_path, STAND_IN) != safety_folder(tmp_path, "download")
    assert safety_folder(tmp_path, STAND_IN).name == "clip_blip"


async def test_stand_in_weights_never_serve_a_public_horde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(WEIGHTS_ENV_VAR, STAND_IN)
    with pytest.raises(SafetyWeightsUnavailable, match="only runs against a local horde"):
        await prepare_safety_backend("horde_safety", tmp_path, public_horde=True)
    await prepare_safety_backend("horde_safety", tmp_path, public_horde=False)  # announced, nothing fetched
    assert not (tmp_path / "clip_blip").exists()


async def test_the_fake_safety_backend_needs_no_files(tmp_path: Path) -> None:
    await prepare_safety_backend("fake", tmp_path, public_horde=True)
    assert not (tmp_path / "clip_blip").exists()


class _Result:
    def __init__(self, is_nsfw: bool, is_csam: bool) -> None:
        self.is_nsfw, self.is_csam = is_nsfw, is_csam


@pytest.mark.parametrize(
    ("nsfw", "csam", "expected"),
    [
        (False, False, (False, False)),
        (True, False, (True, False)),
        (True, True, (True, True)),
        (False, True, (True, True)),  # CSAM is always NSFW too
    ],
)
def test_horde_safety_results_map_onto_scores(nsfw: bool, csam: bool, expected: tuple[bool, bool]) -> None:
    scores = scores_from(_Result(nsfw, csam))
    assert (scores.is_nsfw, scores.is_csam) == expected


def test_no_result_is_an_error_so_the_image_is_censored() -> None:
    with pytest.raises(RuntimeError, match="no verdict"):
        scores_from(None)


async def test_progress_is_logged_while_a_file_downloads(tmp_path: Path, hub: tuple[FakeHub, str]) -> None:
    _, endpoint = hub
    ticks = iter(range(0, 10_000, 10))  # every clock reading is ten seconds after the previous one
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    try:
        await ensure_safety_weights(tmp_path, endpoint=endpoint, clock=lambda: float(next(ticks)))
    finally:
        logger.remove(sink)
    assert any(
        line.startswith(f"Downloading {CLIP_WEIGHTS_NAME}: ") and "% of " in line and "MB/s" in line for line in lines
    )
    assert any(line.startswith(f"Downloaded {CLIP_WEIGHTS_NAME}: 100% of ") for line in lines)
    assert any("Downloading 7 safety model file(s)" in line for line in lines)
