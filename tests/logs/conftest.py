"""Every test here leaves loguru as it found it: no sinks, no patcher."""

from __future__ import annotations

import logging as stdlib_logging
from collections.abc import Iterator

import pytest
from loguru import logger


@pytest.fixture(autouse=True)
def _restore_loguru() -> Iterator[None]:
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    stdlib_logging.captureWarnings(False)
