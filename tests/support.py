"""Constants and small helpers shared by tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEMPLATE = REPO_ROOT / "bridgeData_template.yaml"
# A key of the real form (22 characters) that must never show up in any output.
SECRET_API_KEY = "Zq8secretKEYzq8secret1"
SECRET_CIVITAI_TOKEN = "civitai-token-5f1e9d0c7b"
# Files built once per checkout and kept between runs (ignored by git): the random-weight test models.
TEST_CACHE = REPO_ROOT / "tests" / ".cache"


@contextmanager
def building_in_test_cache() -> Iterator[Path]:
    """`TEST_CACHE`, held by this process alone while a file in it is looked up or built: test processes
    running side by side (pytest-xdist) that need the same file wait for the first to build it."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(TEST_CACHE / "build.lock"):
        yield TEST_CACHE


def unused_port() -> int:
    """A loopback port nothing listens on right now (bound, read and closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
