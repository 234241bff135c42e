"""An api_key of any shape, valid or not, never reaches stdout, stderr or a file under logs/, whatever
fails: the real CLI (`check-config` and `run`) in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.support import FIXTURES, REPO_ROOT, TEMPLATE
from tests.worker_support import horde_with_users, queue, run_burst, worker_folder

UNREACHABLE = "http://127.0.0.1:9/api/"
# Distinctive characters (so that a key cannot occur by chance in ordinary output) and the awkward ones.
KEY_CHARACTERS = st.sampled_from([*"QZqz7X", " ", "'", '"', "\n", "é", "к", "\\", ":", "#"])


def _key_of_length(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(KEY_CHARACTERS, min_size=low, max_size=high).filter(
        lambda key: sum(c in "QZqz7X" for c in key) >= 6 and len(key) != 22
    )


INVALID_KEYS = st.one_of(
    _key_of_length(6, 21),  # too short
    _key_of_length(23, 60),  # too long
    st.sampled_from(["QZqz7X QZqz7X QZqz7X", "QZqz7Xключ7XQZqz7X", "QZ'q\"z7X\nQZqz7X", "  QZqz7XQZqz7XQZqz7X  "]),
)


def _environment() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
    return environ


def _folder(root: Path, api_key: str) -> Path:
    if root.exists():
        shutil.rmtree(root)
    paths = ReferencePaths(root / "models")
    paths.reference.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    data = yaml.safe_load(TEMPLATE.read_text())
    data.update(
        {
            "api_key": api_key,
            "dreamer_name": "Secret Keeping Dreamer",
            "horde_url": UNREACHABLE,
            "cache_home": str(paths.cache_home),
            "models_to_load": ["Deliberate"],
            "inference_backend": "fake",
            "safety_backend": "fake",
            "dashboard_port": 0,
        }
    )
    (root / "bridgeData.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return root


def _everything_written(folder: Path, *results: subprocess.CompletedProcess[str]) -> str:
    written = [result.stdout + result.stderr for result in results]
    written += [path.read_text(errors="replace") for path in (folder / "logs").glob("*") if path.is_file()]
    return "\n".join(written)


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "horde_worker_regen", *args, "--logs-dir", str(folder / "logs")],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _assert_absent(key: str, text: str) -> None:
    for spelling in {key, key.strip(), repr(key)[1:-1], ascii(key)[1:-1]}:
        assert spelling not in text, f"the key {key!r} was written as {spelling!r}"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(INVALID_KEYS)
def test_an_invalid_key_is_never_written(tmp_path: Path, key: str) -> None:
    folder = _folder(tmp_path / "worker", key)
    checked = _cli(folder, "check-config", "--no-models")
    run = _cli(folder, "run", "--burst")
    assert run.returncode != 0
    output = _everything_written(folder, checked, run)
    _assert_absent(key, output)
    assert "Traceback" not in checked.stdout + checked.stderr + run.stdout + run.stderr


def test_an_empty_key_is_refused_plainly(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "worker", "")
    run = _cli(folder, "run", "--burst")
    assert run.returncode != 0
    assert "api_key" in run.stderr and "Traceback" not in run.stderr


async def test_a_valid_key_is_never_written_by_a_serving_worker(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        queue(horde, requester, "a lighthouse")
        folder = worker_folder(tmp_path, horde, owner)
        worker = await run_burst(folder)
        checked = _cli(folder, "check-config", "--no-models")
        output = worker.output + _everything_written(folder, checked)
        assert "submitted" in worker.output
        _assert_absent(owner.api_key, output)
        assert sorted(path.name for path in (folder / "logs").glob("bridge*.log"))[:2] == ["bridge.log", "bridge_0.log"]
