"""The LoRA and TI caches share one `max_lora_cache_size` budget, least recently used first across both."""

from __future__ import annotations

from pathlib import Path

from horde_worker_regen.models.lora_cache import LoraCache, share_budget
from horde_worker_regen.models.loras import LoraFetcher


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _put(cache: LoraCache, ref: str, size: int) -> None:
    cache.folder.mkdir(parents=True, exist_ok=True)
    (cache.folder / ref).write_bytes(b"x" * size)
    cache.add(ref, ref)


def test_together_the_caches_stay_under_one_cap_evicting_the_oldest_file_of_either(tmp_path: Path) -> None:
    clock = ManualClock()
    loras, tis = LoraCache(tmp_path / "lora", 250, clock), LoraCache(tmp_path / "ti", 250, clock)
    share_budget(loras, tis)
    _put(loras, "l1", 100)
    _put(tis, "t1", 100)
    assert loras.lookup("l1") is not None  # l1 used again: t1 is now the oldest
    _put(loras, "l2", 100)  # 300 bytes together: one file must go, and it is the TI
    assert sorted(loras.files) == ["l1", "l2"] and tis.files == {}
    assert not (tmp_path / "ti" / "t1").exists()
    assert LoraCache(tmp_path / "ti", 250).lookup("t1") is None  # the TI index on disk says so too
    _put(tis, "t2", 100)  # the file being added is kept: the least recently used LoRA goes
    assert sorted(loras.files) == ["l2"] and sorted(tis.files) == ["t2"]
    assert loras.budget_bytes() == tis.budget_bytes() == 200


def test_the_fetcher_gives_its_lora_and_ti_caches_one_budget(tmp_path: Path) -> None:
    fetcher = LoraFetcher(tmp_path, downloader=None, max_cache_gb=10, timeout_s=1)  # type: ignore[arg-type]
    loras, tis = fetcher.caches["lora"], fetcher.caches["ti"]
    assert loras.budget_group is tis.budget_group and loras.max_bytes == tis.max_bytes == 10 * 1024**3
