"""Fixtures of the real-hordelib tests: the random-weight test checkpoint, built once and cached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.models.test_checkpoint import TEST_MODEL_BASELINE, TestCheckpoint, ensure_test_checkpoint
from tests.pipeline.conftest import submit_counter
from tests.support import building_in_test_cache
from tests.worker_support import horde_with_users, worker_folder

__all__ = ["submit_counter"]  # the pipeline tests' submit counter, shared


@pytest.fixture(scope="session")
def test_checkpoint() -> TestCheckpoint:
    """The SD 1.5-shaped random-weight checkpoint (deterministic from its seed), built once per checkout."""
    with building_in_test_cache() as cache:
        return ensure_test_checkpoint(cache)


@asynccontextmanager
async def checkpoint_horde(checkpoint: TestCheckpoint) -> AsyncIterator[tuple[RunningLocalHorde, User, User]]:
    """A local horde that knows the test checkpoint's model, with the worker's owner and a requester."""
    async with horde_with_users() as (horde, owner, requester):
        horde.horde.register_model(checkpoint.name, TEST_MODEL_BASELINE)
        yield horde, owner, requester


def hordelib_worker_folder(
    tmp_path: Path, horde: RunningLocalHorde, owner: User, checkpoint: TestCheckpoint, **settings: Any
) -> Path:
    """A worker folder serving only the test checkpoint (a custom model) with real hordelib."""
    custom = [{"name": checkpoint.name, "baseline": "stable_diffusion_1", "filepath": str(checkpoint.path)}]
    return worker_folder(
        tmp_path,
        horde,
        owner,
        inference_backend="hordelib",
        models_to_load=[checkpoint.name],
        custom_models=custom,
        **settings,
    )
