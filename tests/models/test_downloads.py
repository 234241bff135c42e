"""The download path against a local HTTP file server: progress, resume, checksum, disk space, token."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest

from horde_worker_regen.models.downloads import ChecksumMismatch, DiskUsage, Downloader, NotEnoughSpace
from horde_worker_regen.models.progress import DownloadProgress, ProgressLog
from tests.models.file_server import ServedFile, file_server

BODY = bytes(range(256)) * 4096 * 3  # 3 MiB
SHA = hashlib.sha256(BODY).hexdigest()


class StepClock:
    """A clock that moves one second per reading, so progress lines and rates are deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def downloader(session: aiohttp.ClientSession, **kwargs: object) -> Downloader:
    return Downloader(session, log=ProgressLog(every=2.0, clock=StepClock()), **kwargs)  # type: ignore[arg-type]


async def test_download_reports_progress_and_lands_verified(tmp_path: Path) -> None:
    async with file_server({"/model.safetensors": ServedFile(BODY)}) as base, aiohttp.ClientSession() as session:
        loader = downloader(session)
        dest = await loader.fetch(f"{base}/model.safetensors", tmp_path / "model.safetensors", sha256=SHA)
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "model.safetensors.partial").exists()
    assert loader.log.lines >= 2  # a line during the body and the final one
    assert loader.progress == {}  # nothing left under way


async def test_cut_connection_resumes_with_a_range_request(tmp_path: Path) -> None:
    served = ServedFile(BODY, cut_after=1024 * 1024)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        await downloader(session).fetch(f"{base}/m", tmp_path / "m.ckpt", sha256=SHA)
    assert (tmp_path / "m.ckpt").read_bytes() == BODY
    assert len(served.requests) == 2
    assert "Range" not in served.requests[0]
    resumed_at = int(served.requests[1]["Range"][6:].rstrip("-"))
    assert 0 < resumed_at <= 1024 * 1024


async def test_server_without_range_support_starts_over(tmp_path: Path) -> None:
    (tmp_path / "m.ckpt.partial").write_bytes(b"stale bytes from elsewhere")
    served = ServedFile(BODY, honour_range=False)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        await downloader(session).fetch(f"{base}/m", tmp_path / "m.ckpt", sha256=SHA)
    assert (tmp_path / "m.ckpt").read_bytes() == BODY


async def test_checksum_mismatch_is_rejected_and_nothing_lands(tmp_path: Path) -> None:
    async with file_server({"/m": ServedFile(BODY)}) as base, aiohttp.ClientSession() as session:
        with pytest.raises(ChecksumMismatch, match="sha256"):
            await downloader(session).fetch(f"{base}/m", tmp_path / "m.ckpt", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size_known", [True, False])
async def test_full_disk_is_refused_before_a_byte_is_written(tmp_path: Path, size_known: bool) -> None:
    served = ServedFile(BODY)
    tiny = DiskUsage(total=100 * 1024 * 1024, used=99 * 1024 * 1024, free=1024 * 1024)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        loader = downloader(session, disk_usage=lambda _path: tiny)
        with pytest.raises(NotEnoughSpace, match="MB are free"):
            await loader.fetch(f"{base}/m", tmp_path / "m.ckpt", size=len(BODY) if size_known else None)
    assert not (tmp_path / "m.ckpt").exists()
    assert not (tmp_path / "m.ckpt.partial").exists()
    assert len(served.requests) == (0 if size_known else 1)


async def test_token_goes_only_to_civitai_hosts(tmp_path: Path) -> None:
    served = ServedFile(BODY)
    async with file_server({"/m": served}) as base, aiohttp.ClientSession() as session:
        await downloader(session, civitai_token="tok").fetch(f"{base}/m", tmp_path / "a")
        await downloader(session, civitai_token="tok", token_hosts=("127.0.0.1",)).fetch(f"{base}/m", tmp_path / "b")
    assert "Authorization" not in served.requests[0]
    assert served.requests[1]["Authorization"] == "Bearer tok"


def test_progress_rate_and_eta() -> None:
    progress = DownloadProgress("m", total_bytes=1000, done_bytes=600, resumed_from=100, started_at=10.0, now=15.0)
    assert progress.rate == 100.0
    assert progress.eta_seconds == 4.0
    assert "60%" in progress.describe()
