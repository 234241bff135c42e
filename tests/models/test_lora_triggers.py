"""A LoRA's CivitAI trigger words: kept in the cache index when fetched, handed on with the file on every hit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.inference.hordelib_extras import local_extras
from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.loras import LoraFetcher
from tests.models.civitai_server import FakeCivitai

LORA = b"lora weights " * 500
WORDS = ["pixel art", "", "8bit sprite"]  # CivitAI lists blank entries at times


def _spec(loras: list[dict[str, Any]]) -> GenerationSpec:
    return GenerationSpec(
        "job", "Deliberate", "a fox", 64, 64, 2, 1, 1, "k_euler", 7.0, False, None, (), "txt2img", {"loras": loras}
    )


@pytest.fixture
def civitai_files() -> FakeCivitai:
    """What the CivitAI stand-in serves (the `civitai` fixture)."""
    fake = FakeCivitai()
    fake.add(247778, LORA, name="Pixel Art", trained_words=WORDS)
    fake.add(300000, LORA + b"!", name="No Words")
    return fake


def _fetcher(home: Path, session: aiohttp.ClientSession) -> LoraFetcher:
    return LoraFetcher(home, Downloader(session), max_cache_gb=10, timeout_s=30)


async def test_trigger_words_are_stored_with_the_file_and_reach_the_spec_on_fetch_and_on_cache_hits(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    job = _spec([{"name": "247778", "is_version": True, "inject_trigger": "any"}, {"name": "No Words"}])
    fetched, metadata = await _fetcher(tmp_path, session).fetch(job)
    assert metadata == []
    assert fetched.lora_triggers == {"247778": ("pixel art", "8bit sprite")}  # a LoRA without words has no entry
    index = json.loads((tmp_path / "lora" / "index.json").read_text())
    assert index["files"][Path(fetched.lora_files["247778"]).name]["triggers"] == ["pixel art", "8bit sprite"]
    requests = len(civitai.requests)
    again, _ = await _fetcher(tmp_path, session).fetch(job)  # a restart: only the index on disk
    assert len(civitai.requests) == requests
    assert again.lora_triggers == fetched.lora_triggers
    # ... and the inference child registers them where hordelib's inject_trigger looks.
    extras = local_extras(again, tmp_path / "lora", tmp_path / "ti")
    entry = extras.lora_entries[extras.loras[0]["name"].lower()]
    assert next(iter(entry["versions"].values()))["triggers"] == ["pixel art", "8bit sprite"]


async def test_an_index_written_before_trigger_words_were_kept_still_serves_its_files(
    tmp_path: Path, civitai: FakeCivitai, session: aiohttp.ClientSession
) -> None:
    job = _spec([{"name": "247778", "is_version": True}])
    fetched, _ = await _fetcher(tmp_path, session).fetch(job)
    index_path = tmp_path / "lora" / "index.json"
    index = json.loads(index_path.read_text())
    for entry in index["files"].values():
        del entry["triggers"]
    index_path.write_text(json.dumps(index))
    requests = len(civitai.requests)
    again, _ = await _fetcher(tmp_path, session).fetch(job)
    assert again.lora_files == fetched.lora_files and again.lora_triggers == {}
    assert len(civitai.requests) == requests
