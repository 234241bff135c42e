"""The tiny random BLIP saved where transformers' hub cache keeps BLIP-large, so that the start-up fetch
finds it without the network and the captioner loads it by the hub name, as it loads the real model."""

from __future__ import annotations

from pathlib import Path

from horde_worker_regen.safety.weights import CAPTION_MODEL_REPO, caption_cache_dir

REVISION = "0" * 40


def cache_stand_in_caption_model(cache_home: Path) -> Path:
    """The stand-in saved as the hub cache's snapshot of BLIP-large; the snapshot folder."""
    from horde_worker_regen.safety.caption import write_stand_in_caption_model

    repo = caption_cache_dir(cache_home) / f"models--{CAPTION_MODEL_REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    write_stand_in_caption_model(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION, encoding="utf-8")
    return snapshot
