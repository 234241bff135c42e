"""Making torchvision importable beside a torch build it was not compiled for.

PyPI's torchvision wheels link their C++ ops against CUDA torch. Beside a CPU-only torch
that extension cannot load, and `import torchvision` then fails while registering meta
kernels for ops whose schemas were never declared (`operator torchvision::nms does not
exist`). Declaring those schemas first lets the import succeed; the C++ ops themselves
(nms, roi_align) stay unusable, and nothing on the diffusion path needs them.

Only the inference and safety children import torch; the main process never calls this.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

# Held for the life of the process: dropping the Library object would withdraw the schemas.
_declared: list[Any] = []

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _torchvision_extension_loads() -> bool:
    """Whether torchvision's compiled ops load with this torch (they do on matching builds)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to repair
    folder = Path(next(iter(spec.submodule_search_locations)))
    libraries = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    if not libraries:
        return False
    try:
        torch.ops.load_library(str(libraries[0]))  # type: ignore[no-untyped-call]
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Declare torchvision's op schemas when its extension cannot load; True if it did so."""
    if _declared or _torchvision_extension_loads():
        return False
    import torch

    library = torch.library.Library("torchvision", "DEF")  # type: ignore[no-untyped-call]
    for schema in _SCHEMAS:
        library.define(schema)  # type: ignore[no-untyped-call]
    _declared.append(library)
    return True
