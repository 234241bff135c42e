"""`run` against a real local horde over HTTP: the start-up checks an operator sees."""
# The pipeline itself (jobs through the child processes) is tested in tests/pipeline.

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

from horde_worker_regen.localhorde.config import LocalHordeConfig, ModelStatsConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.support import REPO_ROOT, SECRET_API_KEY, TEMPLATE


async def _run_worker(worker_dir: Path, *args: str) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update(
        {"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/stable_diffusion.json"}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "horde_worker_regen",
        "run",
        *args,
        cwd=worker_dir,
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, output.decode()


def _worker_dir(tmp_path: Path, cache_home: Path, horde_url: str, api_key: str) -> Path:
    settings = yaml.safe_load(TEMPLATE.read_text())
    settings.update(
        {
            "api_key": api_key,
            "dreamer_name": "Local Dreamer",
            "horde_url": horde_url,
            "cache_home": str(cache_home),
            "models_to_load": ["TOP 1", "Deliberate"],
        }
    )
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path


async def test_run_checks_the_key_and_resolves_models_with_the_hordes_usage(
    tmp_path: Path, cached_models_dir: Path
) -> None:
    config = LocalHordeConfig(sweep_interval=0, model_stats=ModelStatsConfig(month={"Juggernaut XL": 5000}))
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("owner", trusted=True, kudos=1234)
        worker_dir = _worker_dir(tmp_path, cached_models_dir, horde.api_url, owner.api_key)
        status, output = await _run_worker(
            worker_dir, "--burst", "--set", "inference_backend=fake", "--set", "safety_backend=fake"
        )
    assert status == 0, output
    assert "API key belongs to owner" in output and "1,234 kudos, trusted" in output
    assert "burst mode: the horde has no job and nothing is in flight" in output
    # TOP 1 follows the horde's fresh usage figures, not the older cached copy.
    assert "2 models selected: Juggernaut XL, Deliberate" in output
    assert owner.api_key not in output
    assert owner.api_key not in (worker_dir / "logs" / "bridge.log").read_text()


async def test_run_stops_on_a_key_the_horde_does_not_know(tmp_path: Path, cached_models_dir: Path) -> None:
    config = LocalHordeConfig(sweep_interval=0, model_stats=ModelStatsConfig(month={"Deliberate": 10}))
    async with serve_local_horde(config) as horde:
        worker_dir = _worker_dir(tmp_path, cached_models_dir, horde.api_url, SECRET_API_KEY)
        status, output = await _run_worker(worker_dir)
    assert status == 1
    assert "does not recognise this api_key" in output
    assert SECRET_API_KEY not in output


async def test_the_fake_backends_never_serve_a_public_horde(tmp_path: Path, cached_models_dir: Path) -> None:
    worker_dir = _worker_dir(tmp_path, cached_models_dir, "https://aihorde.net/api/", SECRET_API_KEY)
    status, output = await _run_worker(worker_dir, "--set", "inference_backend=fake", "--set", "safety_backend=fake")
    assert status == 1
    assert "only run against a local horde" in output and "https://aihorde.net/api/" in output
    assert SECRET_API_KEY not in output
