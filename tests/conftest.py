"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_worker_regen.models.reference import ModelReference, usage_from_stats
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import FIXTURES


@pytest.fixture
def reference_json() -> dict[str, object]:
    """The model reference fixture as the horde publishes it."""
    return json.loads((FIXTURES / "stable_diffusion.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def usage_json() -> dict[str, object]:
    """Model usage figures as `/v2/stats/img/models` returns them."""
    return json.loads((FIXTURES / "image_model_usage.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def reference(reference_json: dict[str, object], usage_json: dict[str, object]) -> ModelReference:
    """The fixture reference with usage figures."""
    return ModelReference.from_json(reference_json, usage_from_stats(usage_json))


@pytest.fixture
def cached_models_dir(tmp_path: Path) -> Path:
    """A cache_home that already holds a copy of the reference and usage figures."""
    paths = ReferencePaths(tmp_path / "models")
    paths.reference.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    return paths.cache_home


@pytest.fixture
def offline_reference(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the reference download at a closed local port, as on a machine with no network."""
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_URL", "http://127.0.0.1:9/stable_diffusion.json")
    yield


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AIWORKER_* variables from the machine leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("AIWORKER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def caplog_loguru() -> Iterator[list[str]]:
    """Every loguru message logged during the test, as plain text."""
    from loguru import logger

    lines: list[str] = []
    handler_id = logger.add(lambda message: lines.append(str(message)), level="TRACE", format="{message}")
    yield lines
    logger.remove(handler_id)
