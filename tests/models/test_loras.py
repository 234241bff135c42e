"""LoRA / TI fetching against a local CivitAI stand-in: cache first, token, failures, backoff, eviction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.models.backoff import SourceBackoff
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.lora_cache import LoraCache
from horde_worker_regen.models.loras import LoraFetcher, refs_of
from tests.models.civitai_server import FakeCivitai

LORA = b"lora weights " * 2000


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(loras: list[dict[str, Any]] = (), tis: list[dict[str, Any]] = ()) -> GenerationSpec:  # type: ignore[assignment]
    payload = {"loras": list(loras), "tis": list(tis)}
    return GenerationSpec(
        "job", "Deliberate", "a fox", 64, 64, 2, 1, 1, "k_euler", 7.0, False, None, (), "txt2img", payload
    )


@pytest.fixture
def civitai_files() -> FakeCivitai:
    """What the CivitAI stand-in serves (the `civitai` fixture)."""
    fake = FakeCivitai()
    fake.add(247778, LORA, name="Pixel Art")
    return fake


def fetcher(
    tmp_path: Path,
    session: aiohttp.ClientSession,
    *,
    timeout: float = 30.0,
    token: str | None = None,
    clock: ManualClock | None = None,
) -> LoraFetcher:
    downloader = Downloader(session, civitai_token=token, token_hosts=("127.0.0.1",))
    return LoraFetcher(
        tmp_path, downloader, max_cache_gb=10, timeout_s=timeout, backoff=SourceBackoff(clock=clock or ManualClock())
    )


async def test_version_id_is_downloaded_with_the_token_then_served_from_the_cache(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    job = spec([{"name": "247778", "model": 0.8, "is_version": True}])
    fetched, metadata = await fetcher(tmp_path, session, token="secret").fetch(job)
    assert metadata == []
    path = Path(fetched.lora_files["247778"])
    assert path.parent == tmp_path / "lora" and path.read_bytes() == LORA
    assert fetched.payload["loras"] == job.payload["loras"]
    assert [auth for _, auth in civitai.requests] == ["Bearer secret", "Bearer secret"]  # API, then the file
    again, _ = await fetcher(tmp_path, session).fetch(job)  # a restart: the index on disk is enough
    assert again.lora_files == fetched.lora_files
    assert len(civitai.requests) == 2


async def test_model_id_and_name_resolve_to_the_newest_version(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    fetched, metadata = await fetcher(tmp_path, session).fetch(spec([{"name": "248778"}], [{"name": "pixel art"}]))
    assert metadata == []
    assert Path(fetched.lora_files["248778"]).read_bytes() == LORA
    assert Path(fetched.ti_files["pixel art"]).parent == tmp_path / "ti"
    assert any("query=pixel%20art" in path for path, _ in civitai.requests)


async def test_unknown_lora_runs_without_it_and_reports_download_failed(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    job = spec([{"name": "999", "is_version": True}, {"name": "247778", "is_version": True}])
    loras = fetcher(tmp_path, session)
    fetched, metadata = await loras.fetch(job)
    assert metadata == [{"type": "lora", "value": "download_failed", "ref": "999"}]
    assert [entry["name"] for entry in fetched.payload["loras"]] == ["247778"]
    assert set(fetched.lora_files) == {"247778"}
    assert loras.backoff.blocked_for("127.0.0.1") == 0  # an unknown id is not the source's fault


async def test_a_failing_source_is_skipped_for_a_while_instead_of_timing_out_every_job(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    loras = fetcher(tmp_path, session, clock=clock)
    job = spec([{"name": "247778", "is_version": True}])
    civitai.status = 503
    _, first = await loras.fetch(job)
    _, second = await loras.fetch(job)
    assert first == second == [{"type": "lora", "value": "download_failed", "ref": "247778"}]
    assert len(civitai.requests) == 1  # the second job did not ask the failing source
    civitai.status = 200
    clock.now += 31  # past the first backoff
    fetched, third = await loras.fetch(job)
    assert third == [] and "247778" in fetched.lora_files


@pytest.mark.parametrize("status", [401, 403, 410])
async def test_a_refused_lora_fails_only_itself_and_does_not_block_the_source(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession, status: int
) -> None:
    civitai.add(555, b"early access", name="Early")
    civitai.file_status[555] = status  # e.g. an early-access LoRA the token may not download
    loras = fetcher(tmp_path, session)
    _, metadata = await loras.fetch(spec([{"name": "555", "is_version": True}]))
    assert metadata == [{"type": "lora", "value": "download_failed", "ref": "555"}]
    assert loras.backoff.blocked_for("127.0.0.1") == 0
    fetched, other = await loras.fetch(spec([{"name": "247778", "is_version": True}]))  # the next job's LoRA
    assert other == [] and "247778" in fetched.lora_files


async def test_a_checksum_mismatch_fails_only_that_lora(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    civitai.add(556, b"the real bytes")
    real_version = civitai.version
    monkeypatch.setattr(
        civitai,
        "version",
        lambda version_id: (
            real_version(version_id)
            if version_id != 556
            else {**real_version(556), "files": [{**real_version(556)["files"][0], "hashes": {"SHA256": "00" * 32}}]}
        ),
    )
    loras = fetcher(tmp_path, session)
    _, metadata = await loras.fetch(spec([{"name": "556", "is_version": True}]))
    assert metadata == [{"type": "lora", "value": "download_failed", "ref": "556"}]
    assert loras.backoff.blocked_for("127.0.0.1") == 0


async def test_rate_limiting_backs_off_the_source(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    civitai.file_status[247778] = 429
    loras = fetcher(tmp_path, session)
    _, metadata = await loras.fetch(spec([{"name": "247778", "is_version": True}]))
    assert metadata == [{"type": "lora", "value": "download_failed", "ref": "247778"}]
    assert loras.backoff.blocked_for("127.0.0.1") > 0


async def test_a_download_timeout_fails_only_that_lora(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    civitai.hang = True
    fetched, metadata = await fetcher(tmp_path, session, timeout=0.2).fetch(spec([], [{"name": "7808"}]))
    assert metadata == [{"type": "ti", "value": "download_failed", "ref": "7808"}]
    assert fetched.payload["tis"] == [] and fetched.ti_files == {}


async def test_jobs_asking_at_once_share_one_download(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    loras = fetcher(tmp_path, session)
    job = spec([{"name": "247778", "is_version": True}])
    results = await asyncio.gather(loras.fetch(job), loras.fetch(job))
    assert results[0][0].lora_files == results[1][0].lora_files
    assert len(civitai.requests) == 2  # one API call and one file download


def test_cache_evicts_least_recently_used_files_beyond_its_cap(tmp_path: Path) -> None:
    clock = ManualClock()
    cache = LoraCache(tmp_path, max_bytes=250, clock=clock)
    tmp_path.mkdir(exist_ok=True)
    for index in range(3):
        (tmp_path / f"f{index}").write_bytes(b"x" * 100)
        clock.now += 1
        if index == 2:
            assert cache.lookup("a") is not None  # f0 used again: f1 is now the oldest
        cache.add("abc"[index], f"f{index}")
    assert sorted(cache.files) == ["f0", "f2"]
    assert not (tmp_path / "f1").exists() and cache.lookup("b") is None
    assert LoraCache(tmp_path, max_bytes=250).lookup("c") == tmp_path / "f2"  # the index survives a restart


def test_refs_of_reads_names_and_version_flags() -> None:
    refs = refs_of({"loras": [{"name": "12", "is_version": True}, {"name": "12"}, {"name": ""}], "tis": [{"name": 5}]})
    assert [(r.kind, r.cache_ref) for r in refs] == [("lora", "v:12"), ("lora", "12"), ("ti", "5")]
