"""A disk that fills up during a model download: a clear error, no final file, and a later resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest

from horde_worker_regen.models.downloads import Downloader, NotEnoughSpace
from tests.models.file_server import ServedFile, file_server

BODY = bytes(range(256)) * 4096 * 3  # 3 MiB
SHA = hashlib.sha256(BODY).hexdigest()
DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk


async def test_a_disk_that_fills_up_ends_the_download_clearly_and_leaves_no_model(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    partial = tmp_path / "model.safetensors.partial"
    partial.symlink_to(DEV_FULL)  # the partial file lands on a "disk" with no space left
    async with file_server({"/m": ServedFile(BODY)}) as base, aiohttp.ClientSession() as session:
        loader = Downloader(session)
        with pytest.raises(NotEnoughSpace) as raised:
            await loader.fetch(f"{base}/m", dest, sha256=SHA)
        message = str(raised.value)
        assert "model.safetensors" in message and "filled up" in message and "cache_home" in message
        assert not dest.exists()
        assert loader.progress == {}
        # Space is back: the same call finishes the download and lands a verified file.
        partial.unlink()
        assert (await loader.fetch(f"{base}/m", dest, sha256=SHA)).read_bytes() == BODY
