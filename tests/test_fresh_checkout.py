"""`horde-bridge.sh check-config` from a fresh checkout: the runtime is built, then the command runs.

This builds a second runtime (a few minutes, once) because that is exactly what a newcomer's
first `./horde-bridge.sh` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import FIXTURES, REPO_ROOT, SECRET_API_KEY


def _fresh_checkout(target: Path) -> Path:
    """The files a clone of this working tree would hold (tracked and new, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_horde_bridge_check_config_from_a_fresh_checkout(tmp_path: Path) -> None:
    checkout = _fresh_checkout(tmp_path / "horde-worker-reGen")
    assert not (checkout / ".venv").exists()
    settings = yaml.safe_load((checkout / "bridgeData_template.yaml").read_text())
    settings.update({"api_key": SECRET_API_KEY, "dreamer_name": "Fresh Checkout Dreamer",
                     "horde_url": "http://127.0.0.1:9/api/"})
    (checkout / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    # No network here: the reference comes from a cached copy, as after an earlier online start.
    paths = ReferencePaths(checkout / "models")
    paths.reference.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIWORKER_", "VIRTUAL_ENV", "PYTHON"))}
    environ["HORDE_MODEL_REFERENCE_URL"] = "http://127.0.0.1:9/stable_diffusion.json"

    result = subprocess.run(["./horde-bridge.sh", "check-config"], cwd=checkout, env=environ, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=1500)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Runtime ready" in result.stdout
    assert "# Configuration from bridgeData.yaml: valid." in result.stdout
    assert "dreamer_name: Fresh Checkout Dreamer" in result.stdout
    assert "#   - AlbedoBase XL (SDXL)" in result.stdout
    assert SECRET_API_KEY not in result.stdout + result.stderr
    again = subprocess.run(["./horde-bridge.sh", "check-config", "--no-models"], cwd=checkout, env=environ,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert again.returncode == 0
    assert "Runtime ready" not in again.stdout  # nothing changed, nothing reinstalled
