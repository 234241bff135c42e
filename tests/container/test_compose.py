"""The container's configuration path: compose.yaml's AIWORKER_* variables alone, through check-config.

No Docker engine is needed: the compose file is parsed as YAML and its environment block is given to
`python -m horde_worker_regen check-config` in a folder without bridgeData.yaml, as the container runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO_ROOT

COMPOSE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# What an operator puts in .env (compose substitutes ${NAME:?message} from it).
DOT_ENV = {"HORDE_API_KEY": "abcdefghijklmnopqrstuv", "HORDE_WORKER_NAME": "Container Dreamer"}
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")


def _service() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    service: dict[str, Any] = compose["services"]["worker"]
    return service


def _interpolated(environment: dict[str, Any]) -> dict[str, str]:
    return {name: REQUIRED.sub(lambda match: DOT_ENV[match[1]], str(value)) for name, value in environment.items()}


def _check_config(tmp_path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-m", "horde_worker_regen", "check-config", "--logs-dir", str(tmp_path / "logs")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_compose_environment_alone_is_a_valid_configuration(tmp_path: Path, cached_models_dir: Path) -> None:
    environment = _interpolated(_service()["environment"])
    assert all(name.startswith("AIWORKER_") for name in environment)
    # The container's cache path does not exist here: point it at a cache holding the model reference.
    environment["AIWORKER_CACHE_HOME"] = str(cached_models_dir)
    result = _check_config(tmp_path, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "environment only" in out and not (tmp_path / "bridgeData.yaml").exists()
    assert "models_to_load: [TOP 3]  # env AIWORKER_MODELS_TO_LOAD" in out  # a list, from YAML text
    assert "models_to_skip: [ALL INPAINTING]  # env AIWORKER_MODELS_TO_SKIP" in out
    assert "max_power: 32  # env AIWORKER_MAX_POWER" in out
    assert "dreamer_name: Container Dreamer" in out
    assert DOT_ENV["HORDE_API_KEY"] not in out
    assert "# 3 models to serve:" in out


def test_the_commented_gpu_examples_are_valid_too(tmp_path: Path, cached_models_dir: Path) -> None:
    examples = dict(re.findall(r"^\s*#\s+(AIWORKER_\w+): \"(.*)\"$", COMPOSE.read_text(), re.MULTILINE))
    assert set(examples) == {"AIWORKER_GPU_DEVICE_INDICES", "AIWORKER_GPU_DEVICE_OVERRIDES"}
    environment = {**_interpolated(_service()["environment"]), **examples}
    environment["AIWORKER_CACHE_HOME"] = str(cached_models_dir)
    environment["AIWORKER_MODELS_TO_LOAD"] = "[Deliberate]"
    # check-config refuses GPU settings this machine cannot honour, as run does: two simulated GPUs
    # (the fake backend, which only runs against a local horde) stand in for the container's.
    environment.update(
        {
            "AIWORKER_INFERENCE_BACKEND": "fake",
            "AIWORKER_SAFETY_BACKEND": "fake",
            "AIWORKER_HORDE_URL": "http://127.0.0.1:7001/api/",
            "AIWORKER_FAKE_BACKEND": '{"devices": [{"name": "Sim A", "vram_mb": 8000}, '
            '{"name": "Sim B", "vram_mb": 8000}]}',
        }
    )
    result = _check_config(tmp_path, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gpu_device_indices: [0, 1]" in result.stdout
    assert "gpu_device_overrides: {1: {max_threads: 2, max_power: null, models_to_load: [Deliberate]}}" in result.stdout


def test_the_container_stops_gracefully_and_checks_its_health_without_curl() -> None:
    service = _service()
    assert service["stop_signal"] == "SIGTERM"
    minutes = re.fullmatch(r"(\d+)m", service["stop_grace_period"])
    assert minutes is not None and int(minutes[1]) >= 2  # a job in flight is finished, not lost
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and "curl" not in " ".join(test)
    assert "urllib.request" in test[-1] and "http://127.0.0.1:7070/healthz" in test[-1]
    environment = service["environment"]
    assert environment["AIWORKER_DASHBOARD_ENABLED"] == "true" and environment["AIWORKER_DASHBOARD_PORT"] == "7070"
    assert "AIWORKER_DASHBOARD_HOST" not in environment  # loopback: the health check needs no token
    compile(test[-1], "healthcheck", "exec")  # the one-liner is valid Python


def test_the_image_runs_as_a_non_root_user_with_logs_and_models_as_volumes() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER worker$", text, re.MULTILINE)
    assert 'VOLUME ["/worker/logs", "/worker/models"]' in text
    assert "RUN ./update-runtime.sh --cuda" in text
    assert re.search(r"^FROM \$\{CUDA_IMAGE\}$", text, re.MULTILINE) and "nvidia/cuda:" in text
    assert {volume.split(":")[1] for volume in _service()["volumes"]} == {"/worker/logs", "/worker/models"}
