"""Fixtures of the real-hordelib tests: the random-weight test checkpoint, built once and cached."""

from __future__ import annotations

import pytest

from horde_worker_regen.models.test_checkpoint import TestCheckpoint, ensure_test_checkpoint
from tests.pipeline.conftest import submit_counter
from tests.support import REPO_ROOT

__all__ = ["submit_counter"]  # the pipeline tests' submit counter, shared

# Ignored by git; kept between runs so the ~450 MiB checkpoint is built once per checkout.
CHECKPOINT_CACHE = REPO_ROOT / "tests" / ".cache"


@pytest.fixture(scope="session")
def test_checkpoint() -> TestCheckpoint:
    """The SD 1.5-shaped random-weight checkpoint (deterministic from its seed)."""
    return ensure_test_checkpoint(CHECKPOINT_CACHE)
