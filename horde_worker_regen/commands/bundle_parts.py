"""What a support bundle holds, part by part: each function returns one file's text or data.

Nothing here decides what is secret on its own terms alone: the config's secret fields are registered
with `logs.redaction` when the config is read, environment variables whose names say they hold a secret
are registered by `register_environment_secrets`, and the bundle passes every file through `redact`
on the way into the archive. The parts only avoid reading secrets where they can.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from horde_worker_regen import __version__
from horde_worker_regen.commands.config_masking import SECRET_NAME
from horde_worker_regen.logs.redaction import REDACTED, register_secrets

# The libraries whose versions a maintainer asks for first.
KEY_LIBRARIES = (
    "horde-engine", "horde_sdk", "horde_safety", "horde_model_reference", "torch", "torchvision",
    "pydantic", "aiohttp", "loguru", "psutil", "pillow", "textual", "nvidia-ml-py", "onnxruntime",
    "rembg", "spandrel", "transformers", "xformers",
)  # fmt: skip
# Environment variables that shape how the worker runs; others are left out of the bundle entirely.
DIAGNOSTIC_ENV = re.compile(r"^(AIWORKER_|HORDE_|CUDA_|PYTORCH_|TORCH_|HF_|NVIDIA_|OMP_|MKL_|U2NET_HOME$|AIWORKER)")
STATUS_TIMEOUT_S = 5.0
GPU_PROBE_TIMEOUT_S = 60.0  # importing torch takes seconds; a wedged driver takes forever
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding horde_worker_regen, for the child


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Treat the value of every variable named like a secret (…_KEY, …_TOKEN, …) as one."""
    register_secrets(value for name, value in environ.items() if SECRET_NAME.search(name))


def environment_report(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that shape the worker, secret-looking ones shown only as set."""
    return {
        name: REDACTED if SECRET_NAME.search(name) else value
        for name, value in sorted(environ.items())
        if DIAGNOSTIC_ENV.match(name)
    }


def versions() -> dict[str, Any]:
    """The worker, Python, the platform, torch with its CUDA and cuDNN, and the key libraries."""
    found: dict[str, Any] = {
        "worker": __version__,
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "libraries": {name: _installed(name) for name in KEY_LIBRARIES},
    }
    found |= gpu_stack_in_child()
    return found


def gpu_stack() -> dict[str, Any]:
    """torch's build and the NVIDIA driver, asked in this process (the child of `gpu_stack_in_child`)."""
    return _torch_build() | {"nvidia_driver": _nvidia_driver()}


def gpu_stack_in_child(timeout_s: float = GPU_PROBE_TIMEOUT_S) -> dict[str, Any]:
    """`gpu_stack()` from a short-lived child: a wedged driver costs this part of the bundle, never the bundle."""
    code = "import json; from horde_worker_regen.commands.bundle_parts import gpu_stack; print(json.dumps(gpu_stack()))"
    environ = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=environ
        )
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"gpu_stack_error": f"torch and the NVIDIA driver did not answer within {timeout_s:.0f}s"}
    except (ValueError, IndexError, OSError) as error:
        return {"gpu_stack_error": f"torch and the NVIDIA driver could not be asked ({type(error).__name__})"}
    return loaded if isinstance(loaded, dict) else {"gpu_stack_error": "an answer that is not a JSON object"}


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_build() -> dict[str, Any]:
    """What torch was built with and whether it sees a GPU (imports torch: this runs only for a bundle)."""
    try:
        import torch
    except ImportError as error:
        return {"torch": None, "torch_error": str(error)}
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_hip": getattr(torch.version, "hip", None),
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
    }


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version through NVML, or None without one."""
    try:
        import pynvml  # type: ignore[import-untyped]

        pynvml.nvmlInit()
    except Exception:  # no library, no driver: both mean "none" here
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def log_tails(logs_dir: Path, max_bytes: int) -> dict[str, bytes]:
    """The last `max_bytes` of every log file in `logs_dir` (rotated ones included), by file name."""
    if not logs_dir.is_dir():
        return {}
    tails: dict[str, bytes] = {}
    for path in sorted(logs_dir.iterdir()):
        if not path.is_file() or (".log" not in path.name and not path.name.endswith(".jsonl")):
            continue
        tails[path.name] = _tail(path, max_bytes)
    return tails


def _tail(path: Path, max_bytes: int) -> bytes:
    """The end of a file, starting at a whole line when it had to be cut."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - max_bytes))
        data = handle.read(max_bytes)
    if size > max_bytes:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else data
    return data


def live_status(port: int, token: str | None) -> dict[str, Any] | str:
    """The running worker's /status.json from its dashboard on this machine, or why it could not be read."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/status.json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=STATUS_TIMEOUT_S) as answer:  # noqa: S310
            loaded = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"no running worker answered on 127.0.0.1:{port} ({type(error).__name__}: {error})"
    return loaded if isinstance(loaded, dict) else f"127.0.0.1:{port}/status.json is not a JSON object"


def last_status(path: Path) -> dict[str, Any] | None:
    """The snapshot a stopped (or crashed) worker left on disk, or None without a readable one."""
    try:
        loaded = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return loaded if isinstance(loaded, dict) else None


def faults_from_events(logs_dir: Path, limit: int, max_bytes: int) -> list[dict[str, Any]]:
    """The last `limit` job faults in the last `max_bytes` of each event log (JSON lines) in `logs_dir`,
    oldest first (a metrics file kept for weeks may be gigabytes)."""
    faults: list[dict[str, Any]] = []
    if not logs_dir.is_dir():
        return faults
    for path in sorted(logs_dir.glob("*.jsonl"), key=lambda found: found.stat().st_mtime):
        for line in _tail(path, max_bytes).splitlines():
            event = _json_object(line)
            if event is not None and event.get("kind") == "job_faulted":
                faults.append(event)
    return faults[-limit:]


def _json_object(line: bytes) -> dict[str, Any] | None:
    """One event line, or None for a torn or foreign one."""
    try:
        loaded = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: a line of a few thousand nested brackets
        return None
    return loaded if isinstance(loaded, dict) else None
