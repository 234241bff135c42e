"""The real worker with real hordelib, on the CPU, against the local horde.

One worker run serves every job kind below (each worker start costs a hordelib initialisation):
the random-weight checkpoint makes noise, so what is checked is the plumbing, sizes, determinism
(same seed and parameters give the same pixels; a parameter that changes the computation changes
them) and what the horde is told, never image quality.
"""

from __future__ import annotations

import base64
import collections
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.realinference.conftest import checkpoint_horde, hordelib_worker_folder
from tests.realinference.extras import LOCAL_LORA, LOCAL_TI, seed_extras_cache
from tests.worker_support import error_lines, generations_of, run_burst, stored_image

SIZE = 64
SEED = "4242"
UNREACHABLE_LORA = "247778"  # a CivitAI version id: CivitAI cannot be reached from a test machine
UNREACHABLE_TI = "7808"
# hordelib turns hires_fix off for SD 1.5 models at 512 px or less (nothing to fix there); max_power 11
# lets the worker take 576x576.
HIRES_SIZE = 576
WORKER_TIMEOUT_S = 900.0


def _webp(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", lossless=True)
    return base64.b64encode(buffer.getvalue()).decode()


def _source() -> str:
    return _webp(Image.radial_gradient("L").resize((SIZE, SIZE)).convert("RGB"))


def _mask() -> str:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 16, 48, 48))
    return _webp(mask)


def _outpainting_source() -> str:
    """An RGBA source whose transparent border is the area to paint."""
    image = Image.radial_gradient("L").resize((SIZE, SIZE)).convert("RGBA")
    image.putalpha(0)
    image.paste(Image.new("RGBA", (32, 32), (200, 80, 40, 255)), (16, 16))
    return _webp(image)


@dataclass
class Plan:
    """The requests of the run, by label."""

    requests: dict[str, WaitingPrompt] = field(default_factory=dict)

    def queue(self, horde: RunningLocalHorde, requester: User, model: str, label: str, **params: Any) -> None:
        top: dict[str, Any] = {
            key: params.pop(key) for key in ("source_image", "source_mask", "source_processing") if key in params
        }
        body: dict[str, Any] = {
            "prompt": "a lighthouse on a cliff",
            "models": [model],
            **top,
            "params": {
                "width": SIZE,
                "height": SIZE,
                "steps": 2,
                "seed": SEED,
                "sampler_name": "k_euler",
                "karras": False,
                "cfg_scale": 5.0,
                **params,
            },
        }
        self.requests[label] = queue_request(horde.horde, requester, body)


# label -> request params (the top-level fields source_image/source_mask/source_processing included).
JOB_KINDS: dict[str, dict[str, Any]] = {
    "txt2img": {},
    "txt2img again": {},
    "other seed": {"seed": "4243"},
    "batch of 4": {"n": 4},
    "img2img": {"source_image": _source(), "denoising_strength": 0.6},
    "inpainting": {"source_image": _source(), "source_mask": _mask(), "source_processing": "inpainting"},
    "outpainting": {"source_image": _outpainting_source(), "source_processing": "outpainting"},
    "hires_fix": {"hires_fix": True, "width": HIRES_SIZE, "height": HIRES_SIZE},
    "tiling": {"tiling": True},
    "clip_skip": {"clip_skip": 2},
    "k_dpmpp_2m karras": {"sampler_name": "k_dpmpp_2m", "karras": True},
    "lcm": {"sampler_name": "lcm"},
    "k_heun": {"sampler_name": "k_heun"},
    "lora": {"loras": [{"name": UNREACHABLE_LORA, "model": 1.0, "clip": 1.0, "is_version": True}]},
    "ti": {"tis": [{"name": UNREACHABLE_TI, "inject_ti": "negprompt", "strength": 1.0}]},
    # In the worker's LoRA/TI cache before it starts: hordelib must use those files, not CivitAI.
    "local lora": {"loras": [{"name": LOCAL_LORA, "model": 1.0, "clip": 1.0}]},
    "local ti": {"tis": [{"name": LOCAL_TI, "inject_ti": "prompt", "strength": 1.0}]},
}


def _pixels(horde: RunningLocalHorde, pg: ProcessingGeneration) -> Image.Image:
    return stored_image(horde, pg).convert("RGB")


def _same(first: Image.Image, second: Image.Image) -> bool:
    return ImageChops.difference(first, second).getbbox() is None


async def _run_worker(tmp_path: Path, horde: RunningLocalHorde, owner: User, checkpoint: TestCheckpoint) -> Path:
    folder = hordelib_worker_folder(
        tmp_path,
        horde,
        owner,
        checkpoint,
        max_batch=4,
        max_power=11,
        queue_size=0,
        allow_lora=True,
        # CPU steps and decodes are far slower than the GPU ones the defaults are for.
        inference_step_timeout=600,
        post_process_timeout=600,
        preload_timeout=600,
    )
    seed_extras_cache(tmp_path / "models", checkpoint.path)
    await run_burst(folder, timeout=WORKER_TIMEOUT_S)
    return folder


async def test_real_hordelib_serves_every_cpu_job_kind(
    tmp_path: Path, test_checkpoint: TestCheckpoint, submit_counter: collections.Counter[str]
) -> None:
    plan = Plan()
    async with checkpoint_horde(test_checkpoint) as (horde, owner, requester):
        for label, params in JOB_KINDS.items():
            plan.queue(horde, requester, test_checkpoint.name, label, **params)
        folder = await _run_worker(tmp_path, horde, owner, test_checkpoint)
        jobs = {label: generations_of(horde, wp) for label, wp in plan.requests.items()}
        for label, pgs in jobs.items():
            assert pgs and all(pg.is_completed and not pg.faulted for pg in pgs), label
            assert all(submit_counter[pg.id] == 1 for pg in pgs), label
            size = HIRES_SIZE if label == "hires_fix" else SIZE
            assert all(stored_image(horde, pg).size == (size, size) for pg in pgs), label
        images = {label: _pixels(horde, pgs[0]) for label, pgs in jobs.items()}
        batch = [_pixels(horde, pg) for pg in jobs["batch of 4"]]
        lora_metadata, ti_metadata = jobs["lora"][0].gen_metadata, jobs["ti"][0].gen_metadata
    assert _same(images["txt2img"], images["txt2img again"])  # same seed and parameters: same pixels
    for label in ("other seed", "tiling", "clip_skip", "k_dpmpp_2m karras", "lcm", "k_heun", "img2img"):
        assert not _same(images["txt2img"], images[label]), f"{label} made the same pixels as plain txt2img"
    assert len(batch) == 4 and all(not _same(batch[0], other) for other in batch[1:])
    assert {"type": "lora", "value": "download_failed", "ref": UNREACHABLE_LORA} in lora_metadata
    assert _same(images["txt2img"], images["lora"])  # generated without the LoRA it could not fetch
    assert {"type": "ti", "value": "download_failed", "ref": UNREACHABLE_TI} in ti_metadata
    for label in ("local lora", "local ti"):  # the cached file was applied, and nothing was reported missing
        assert not _same(images["txt2img"], images[label]), f"{label} made the same pixels as plain txt2img"
        faults = [entry for entry in jobs[label][0].gen_metadata or () if entry["type"] in ("lora", "ti")]
        assert faults == [], label
    child_log = (folder / "logs" / "trace_1.log").read_text()  # hordelib's own lines go to the trace log
    assert "Running pipeline stable_diffusion_paint" in child_log  # inpainting and outpainting
    assert "Running pipeline stable_diffusion_hires_fix" in child_log
    assert error_lines(folder / "logs") == []
