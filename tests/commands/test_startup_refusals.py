"""`check-config` refuses exactly what `run` refuses at start-up, with the same reason.

Both commands are driven in-process through the CLI entry point, on a worker folder whose horde
and model-reference URLs point at a closed local port: a refusal must come before any horde call
(a configuration that slipped through would instead stop `run` at the identity check, with a
different reason, and fail the comparison).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from loguru import logger

from horde_worker_regen.cli import main
from horde_worker_regen.commands import run as run_module
from horde_worker_regen.commands.startup_checks import StartupError
from horde_worker_regen.config.bridge_data import BridgeData
from tests.support import SECRET_API_KEY, TEMPLATE

CLOSED_PORT_URL = "http://127.0.0.1:9"
RUN_PREFIX = "Cannot start: "
CHECK_PREFIX = "# ERROR: Cannot start: "


def write_safetensors(path: Path, tensor_names: list[str]) -> Path:
    """A small, well-formed safetensors file: one float32 per tensor."""
    header = {
        name: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, name in enumerate(tensor_names)
    }
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + bytes(4 * len(tensor_names)))
    return path


def checkpoint(folder: Path) -> Path:
    return write_safetensors(folder / "mine.safetensors", ["model.diffusion_model.input_blocks.0.weight"])


@dataclass(frozen=True)
class Case:
    """A configuration `run` refuses: what to change in the worker folder, and words its reason holds."""

    change: Callable[[Path, dict[str, Any]], None]
    reason: str
    config_error: bool = False  # refused while reading the configuration (exit 2 from both commands)


def _set(**values: Any) -> Callable[[Path, dict[str, Any]], None]:
    return lambda folder, settings: settings.update(values)


def _drop(key: str) -> Callable[[Path, dict[str, Any]], None]:
    return lambda folder, settings: settings.pop(key)


def _custom(file: Callable[[Path], Path], name: str = "My Own Model") -> Callable[[Path, dict[str, Any]], None]:
    def change(folder: Path, settings: dict[str, Any]) -> None:
        settings["custom_models"] = [{"name": name, "baseline": "stable_diffusion_1", "filepath": str(file(folder))}]
        settings["models_to_load"] = [name]

    return change


def _written(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return write


FAKE_GPU = {"devices": [{"name": "Fake GPU", "vram_mb": 8192}]}
CASES = {
    "anonymous key": Case(_set(api_key="0000000000"), "api_key is the anonymous key"),
    "missing dreamer_name": Case(_drop("dreamer_name"), "dreamer_name is not set"),
    "missing alchemist_name with the alchemist on": Case(_set(alchemist=True), "alchemist_name is not set"),
    "fake backends on a public horde": Case(
        _set(inference_backend="fake", safety_backend="fake", horde_url="https://aihorde.net/api/"),
        "the fake backends make test patterns",
    ),
    "a backend this version lacks": Case(_set(inference_backend="comfy"), "inference_backend", config_error=True),
    "unknown models, nothing left to serve": Case(_set(models_to_load=["Delibrate"]), "No model to serve"),
    "no model reference": Case(
        lambda folder, settings: settings.update(cache_home=str(folder / "empty")), "is not cached at"
    ),
    "a GPU this machine lacks": Case(
        _set(inference_backend="fake", safety_backend="fake", fake_backend=FAKE_GPU, gpu_device_indices=[1]),
        "gpu_device_indices: there is no GPU 1",
    ),
    "a per-GPU model that is not served": Case(
        _set(
            inference_backend="fake",
            safety_backend="fake",
            fake_backend=FAKE_GPU,
            gpu_device_overrides={0: {"models_to_load": ["Anything Diffusion"]}},
        ),
        "are not among the served models",
    ),
    "custom model named like a reference model": Case(
        _custom(checkpoint, name="Deliberate"), "custom_models.0.name: 'Deliberate' is the name of a model"
    ),
    "custom model file missing": Case(_custom(lambda folder: folder / "absent.safetensors"), "does not exist"),
    "custom model file empty": Case(_custom(_written("empty.safetensors", b"")), "is empty"),
    "custom model file not a checkpoint": Case(
        _custom(_written("page.safetensors", b"<html>Not found</html>")), "is not a safetensors file"
    ),
    "custom model file a LoRA": Case(
        _custom(lambda folder: write_safetensors(folder / "lora.safetensors", ["lora_unet_down.lora_up.weight"])),
        "is a LoRA, not a checkpoint",
    ),
    "custom model file unfinished": Case(_custom(_written("mine.safetensors.part", b"PK\x03\x04")), "ends in .part"),
    "two custom models of one name": Case(
        lambda folder, settings: settings.update(
            custom_models=[{"name": name, "filepath": str(checkpoint(folder))} for name in ("Mine", "mine")]
        ),
        "each custom model needs a name of its own",
        config_error=True,
    ),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Iterator[None]:
    """No network: the reference download fails at once and the cached copy is used."""
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_URL", f"{CLOSED_PORT_URL}/stable_diffusion.json")
    yield
    logger.remove()  # the commands pointed loguru at this test's captured stderr


def worker_settings(cache_home: Path) -> dict[str, Any]:
    settings: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    settings.update(
        {
            "api_key": SECRET_API_KEY,
            "dreamer_name": "Refusal Test Dreamer",
            "cache_home": str(cache_home),
            "horde_url": f"{CLOSED_PORT_URL}/api/",
            "models_to_load": ["Deliberate"],
            "dashboard_port": 0,
        }
    )
    return settings


def invoke(
    folder: Path, command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one CLI command run in `folder`."""
    monkeypatch.chdir(folder)
    capsys.readouterr()
    status = main([command, "--logs-dir", str(folder / "logs")])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def message_after(text: str, prefix: str) -> list[str]:
    """The refusal's lines, from the one starting at `prefix` to the end, without their comment marks."""
    start = text.index(prefix) + len(prefix)
    first, *rest = text[start:].rstrip("\n").splitlines()
    return [first.strip(), *(line.removeprefix("#").strip() for line in rest)]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_check_config_refuses_what_run_refuses_with_the_same_reason(
    case: Case,
    tmp_path: Path,
    cached_models_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_settings(cached_models_dir)
    case.change(tmp_path, settings)
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    run_status, _, run_err = invoke(tmp_path, "run", capsys, monkeypatch)
    check_status, check_out, check_err = invoke(tmp_path, "check-config", capsys, monkeypatch)
    assert run_status != 0 and check_status != 0
    if case.config_error:
        assert run_status == check_status == 2
        assert run_err == check_err and case.reason in run_err
        return
    run_reason = message_after(run_err, RUN_PREFIX)
    assert case.reason in "\n".join(run_reason)
    assert message_after(check_out, CHECK_PREFIX) == run_reason
    assert "refused: the worker would not start" in check_out.splitlines()[0]
    assert SECRET_API_KEY not in run_err + check_out + check_err


@pytest.mark.parametrize("content", ["", 'api_key: "0000000000"\n'], ids=["empty", "anonymous"])
def test_an_empty_config_file_is_refused_by_both_with_every_problem(
    content: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "bridgeData.yaml").write_text(content)
    run_status, _, run_err = invoke(tmp_path, "run", capsys, monkeypatch)
    check_status, check_out, _ = invoke(tmp_path, "check-config", capsys, monkeypatch)
    assert (run_status, check_status) == (1, 2)
    reason = message_after(run_err, RUN_PREFIX)
    assert message_after(check_out, CHECK_PREFIX) == reason
    assert reason[0] == "2 problems:"
    assert "api_key is the anonymous key" in reason[1] and "dreamer_name is not set" in reason[2]


def test_a_missing_config_file_is_refused_by_both_alike(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_status, _, run_err = invoke(tmp_path, "run", capsys, monkeypatch)
    check_status, _, check_err = invoke(tmp_path, "check-config", capsys, monkeypatch)
    assert run_status == check_status == 2
    assert run_err == check_err and "no config file at" in run_err


def test_a_configuration_run_accepts_is_valid_for_check_config(
    tmp_path: Path,
    cached_models_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_settings(cached_models_dir)
    _custom(checkpoint)(tmp_path, settings)
    settings.update(inference_backend="fake", safety_backend="fake", fake_backend=FAKE_GPU, gpu_device_indices=[0])
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))

    async def identity_check(data: BridgeData) -> None:
        raise StartupError("reached the identity check")

    monkeypatch.setattr(run_module, "preflight", identity_check)  # the first step that asks the horde
    check_status, check_out, _ = invoke(tmp_path, "check-config", capsys, monkeypatch)
    run_status, _, run_err = invoke(tmp_path, "run", capsys, monkeypatch)
    assert check_status == 0, check_out
    assert check_out.splitlines()[0].endswith(": valid.")
    assert "#   - My Own Model" in check_out
    assert run_status == 1
    assert message_after(run_err, RUN_PREFIX) == ["reached the identity check"]
