"""A local stand-in for the CivitAI API: models, versions, search and file downloads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class FakeCivitai:
    """LoRA versions by id (model id = version id + 1000), and how the server misbehaves."""

    files: dict[int, bytes] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)
    trained_words: dict[int, list[str]] = field(default_factory=dict)  # a version's `trainedWords`
    status: int = 200  # anything else: every API call answers it
    hang: bool = False  # API calls never answer (the client's timeout decides)
    file_status: dict[int, int] = field(default_factory=dict)  # a version's download answers this status
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    base: str = ""

    def add(
        self, version_id: int, body: bytes, name: str | None = None, trained_words: list[str] | None = None
    ) -> None:
        self.files[version_id] = body
        if name:
            self.names[name] = version_id
        if trained_words is not None:
            self.trained_words[version_id] = trained_words

    def version(self, version_id: int) -> dict[str, Any]:
        body = self.files[version_id]
        return {
            "id": version_id,
            "modelId": version_id + 1000,
            "files": [
                {
                    "name": f"lora {version_id}.safetensors",
                    "sizeKB": len(body) / 1024,
                    "primary": True,
                    "hashes": {"SHA256": hashlib.sha256(body).hexdigest().upper()},
                    "downloadUrl": f"{self.base}/download/{version_id}",
                }
            ],
            "trainedWords": self.trained_words.get(version_id, []),
        }

    def model(self, version_id: int) -> dict[str, Any]:
        name = next((n for n, v in self.names.items() if v == version_id), f"model {version_id}")
        return {"id": version_id + 1000, "name": name, "type": "LORA", "modelVersions": [self.version(version_id)]}


async def _api(request: web.Request, fake: FakeCivitai) -> web.StreamResponse:
    fake.requests.append((request.path_qs, request.headers.get("Authorization")))
    if fake.hang:
        await asyncio.Event().wait()
    kind, _, ident = request.match_info["what"].partition("/")
    status = fake.file_status.get(int(ident), fake.status) if kind == "download" and ident.isdigit() else fake.status
    if status != 200:
        return web.Response(status=status)
    if kind == "download" and ident.isdigit() and int(ident) in fake.files:
        return web.Response(body=fake.files[int(ident)])
    if kind == "model-versions" and ident.isdigit() and int(ident) in fake.files:
        return web.json_response(fake.version(int(ident)))
    if kind == "models" and ident.isdigit() and int(ident) - 1000 in fake.files:
        return web.json_response(fake.model(int(ident) - 1000))
    if kind == "models" and not ident:
        query = request.query.get("query", "").casefold()
        return web.json_response({"items": [fake.model(v) for n, v in fake.names.items() if query in n.casefold()]})
    return web.Response(status=404)


@asynccontextmanager
async def civitai_server(fake: FakeCivitai) -> AsyncIterator[str]:
    """Serve `fake`; yields the API base URL (`.../api/v1`)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _api(request, fake)

    app = web.Application()
    app.router.add_get("/api/v1/{what:.*}", handle)
    app.router.add_get("/{what:download/.*}", handle)
    server = TestServer(app)
    await server.start_server()
    fake.base = str(server.make_url("")).rstrip("/")
    try:
        yield fake.base + "/api/v1"
    finally:
        await server.close()
