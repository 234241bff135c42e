"""`run` with the real safety backend: the weights are fetched before any child starts, and a worker
that cannot fetch them stops with a clear message instead of serving unchecked images."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.safety.weights import WEIGHTS_ENV_VAR
from tests.worker_support import run_burst, worker_folder


async def test_a_worker_that_cannot_fetch_the_safety_weights_never_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0)) as horde:
        owner = horde.add_user("owner", trusted=True)
        folder = worker_folder(tmp_path, horde, owner, safety_backend="horde_safety")
        worker = await run_burst(folder, expected_status=1)
        assert not horde.state.workers  # it never popped
    line = next(line for line in worker.lines if "Cannot start" in line)
    assert "open_clip_pytorch_model.bin" in line and "http://127.0.0.1:9/timm/" in line
    assert "does not serve without it" in line and "HF_ENDPOINT" in line
    assert "Starting the safety process" not in worker.output
