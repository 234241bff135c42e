"""`support-bundle`: what a maintainer gets, and that no secret from the config or the environment is in it.

The worker's dashboard runs for real (its live parts, children in this process) so the bundle reads a
real status snapshot over HTTP with the dashboard token, as it does beside a running worker.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen import cli
from horde_worker_regen.commands.bundle_parts import gpu_stack_in_child, log_tails
from horde_worker_regen.commands.config_masking import mask_config_text
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.server import DashboardServer, start_dashboard
from horde_worker_regen.logs.redaction import REDACTED, spellings
from horde_worker_regen.pipeline.reporter import RecentFault
from tests.dashboard.conftest import build_parts

API_KEY = "bundleApiKey_0123456789"
CIVITAI_TOKEN = "bundleCivitaiToken-abcdef"
DASHBOARD_TOKEN = "bundleDashboardToken-987654321"
OVERRIDDEN_KEY = "fileKeyOverriddenByEnv-42"  # the file's key, replaced by AIWORKER_API_KEY
ENVIRONMENT_SECRETS = {
    "AIWORKER_API_KEY": API_KEY,
    "HF_TOKEN": "hf_bundleHuggingFaceToken",
    "MY_SERVICE_PASSWORD": "bundle-env-password-1",
    "AWS_SECRET_ACCESS_KEY": "bundleAwsSecretAccessKey",
}
ALL_SECRETS = [CIVITAI_TOKEN, DASHBOARD_TOKEN, OVERRIDDEN_KEY, *ENVIRONMENT_SECRETS.values()]


def _bridge_data_text(port: int) -> str:
    return (
        f'api_key: "{OVERRIDDEN_KEY}"  # mine\n'
        'dreamer_name: "Bundle Test Dreamer"\n'
        f"civitai_api_token: {CIVITAI_TOKEN}\n"
        f"dashboard_token: '{DASHBOARD_TOKEN}'\n"
        f"dashboard_port: {port}\n"
        "inference_backend: fake\nsafety_backend: fake\n"
    )


def _leaky_logs(logs: Path) -> None:
    """Log lines and an event log that hold every secret, as a careless library might have printed them."""
    logs.mkdir()
    leaks = "\n".join(f"a line quoting {secret!r} and {json.dumps(secret)}" for secret in ALL_SECRETS)
    (logs / "bridge.log").write_text("start\n" + leaks + "\nend\n")
    (logs / "trace_1.log.2026-12-06").write_text(leaks + "\n")
    fault = {"kind": "job_faulted", "at": 5.0, "job": "job-7", "reason": f"upload refused for key {API_KEY}"}
    (logs / "events.jsonl").write_text(json.dumps({"kind": "job_popped", "at": 1.0}) + "\n" + json.dumps(fault) + "\n")


def _members(archive: Path) -> dict[str, str]:
    with zipfile.ZipFile(archive) as opened:
        return {name: opened.read(name).decode("utf-8") for name in opened.namelist()}


async def test_the_bundle_holds_what_a_maintainer_needs_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession, clean_env: None
) -> None:
    data = BridgeData(
        api_key=API_KEY, dreamer_name="Bundle Test Dreamer", dashboard_port=0, dashboard_token=DASHBOARD_TOKEN
    )
    parts = await build_parts(session, data)
    parts.pipeline.recent_faults.append(RecentFault(1.0, "job-9", 1, "faulted", f"the model broke near {API_KEY}"))
    server = await start_dashboard(data, parts.sources)
    assert isinstance(server, DashboardServer) and server.url is not None
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    (tmp_path / "bridgeData.yaml").write_text(_bridge_data_text(port))
    _leaky_logs(tmp_path / "logs")
    monkeypatch.chdir(tmp_path)
    for name, value in ENVIRONMENT_SECRETS.items():
        monkeypatch.setenv(name, value)
    try:
        # In a thread: the bundle asks the dashboard, which answers on this test's event loop.
        status = await asyncio.to_thread(cli.main, ["support-bundle", "-o", "bundle.zip"])
    finally:
        await server.stop()
    assert status == 0
    members = _members(tmp_path / "bundle.zip")
    expected = {"README.txt", "config.yaml", "versions.json", "devices.json", "environment.json", "status.json",
                "faults.json", "logs/bridge.log", "logs/trace_1.log.2026-12-06", "logs/events.jsonl"}  # fmt: skip
    assert expected <= set(members)
    for name, text in members.items():
        for secret in ALL_SECRETS:
            for spelling in spellings(secret):
                assert spelling not in text, f"{name} holds a secret"
    assert "api_key: <redacted>" in members["config.yaml"]
    assert "Bundle Test Dreamer" in members["config.yaml"]
    versions = json.loads(members["versions.json"])
    assert versions["python"] and versions["torch"] and versions["libraries"]["horde-engine"]
    assert json.loads(members["environment.json"])["AIWORKER_API_KEY"] == REDACTED
    assert json.loads(members["status.json"])["worker"]["name"] == "Bundle Test Dreamer"
    faults = json.loads(members["faults.json"])
    assert [fault["job"] for fault in faults["worker"]] == ["job-9"]
    assert [fault["job"] for fault in faults["event_logs"]] == ["job-7"]
    assert REDACTED in faults["event_logs"][0]["reason"]


def test_a_config_that_cannot_be_read_is_bundled_with_its_reason_and_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    (tmp_path / "bridgeData.yaml").write_text(
        f"api_key: {API_KEY}\ncivitai_api_token: '{CIVITAI_TOKEN}'\nmax_threads: lots\n  broken: [yaml\n"
    )
    monkeypatch.chdir(tmp_path)
    assert cli.main(["support-bundle", "-o", "out/bundle.zip", "--set", "dashboard_enabled=false"]) == 0
    members = _members(tmp_path / "out" / "bundle.zip")
    assert "config.yaml" not in members and "status.json" not in members
    assert "could not be used" in members["config-error.txt"]
    assert "max_threads: lots" in members["bridgeData.yaml"]  # the operator's own text, to see the mistake
    for text in members.values():
        assert API_KEY not in text and CIVITAI_TOKEN not in text


def test_without_a_running_worker_the_bundle_holds_the_status_its_last_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    (tmp_path / "bridgeData.yaml").write_text(f"api_key: {API_KEY}\ndashboard_port: 9\n")  # nothing listens there
    (tmp_path / "logs").mkdir()
    left = {"worker": {"name": "Crashed Dreamer", "stopping": True},
            "faults": [{"job": "job-3", "reason": f"refused with {API_KEY}"}]}  # fmt: skip
    (tmp_path / "logs" / "last-status.json").write_text(json.dumps(left))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["support-bundle", "-o", "bundle.zip"]) == 0
    members = _members(tmp_path / "bundle.zip")
    assert "status.json" not in members
    assert json.loads(members["last-status.json"])["worker"]["name"] == "Crashed Dreamer"
    assert [fault["job"] for fault in json.loads(members["faults.json"])["worker"]] == ["job-3"]
    assert all(API_KEY not in text for text in members.values())


# The shapes a secret takes in files operators really have: a BOM from Windows Notepad, quoted keys, the
# value on the next line or as a block scalar, the older CIVIT_API_TOKEN spelling, a list item.
SHAPES = (
    "api_key: {v}\n",
    "\ufeffapi_key: {v}\n",
    '"civitai_api_token": "{v}"\n',
    "dashboard_token:\n  {v}\n",
    "api_key: |\n  {v}\n  {v}\n",
    "CIVIT_API_TOKEN: '{v}'  # from civitai.com\n",
    "- api_key: {v}\n",
)
_SECRET_VALUE = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=8, max_size=40)


@given(_SECRET_VALUE, st.sampled_from(SHAPES), st.sampled_from(["", "max_threads: lots\n  broken: [yaml\n"]))
def test_a_secret_in_any_shape_of_line_is_blanked_and_known(value: str, shape: str, damage: str) -> None:
    text = "dreamer_name: Fox\n" + shape.format(v=value) + "max_power: 8\n" + damage
    masked = mask_config_text(text)
    assert value not in masked.text
    assert value in masked.secrets
    assert "dreamer_name: Fox" in masked.text and "max_power: 8" in masked.text  # the rest stays readable


def test_a_secret_in_a_flow_mapping_is_known_for_the_final_redaction() -> None:
    masked = mask_config_text("{api_key: flowStyleKey12345, dreamer_name: Fox}\n")
    assert "flowStyleKey12345" in masked.secrets


def test_a_damaged_config_in_every_shape_reaches_the_bundle_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    values = [f"shapeSecret{index:02d}abcdef" for index in range(len(SHAPES))]
    text = "".join(shape.format(v=value) for shape, value in zip(SHAPES, values, strict=True))
    (tmp_path / "bridgeData.yaml").write_text(text + "max_threads: [unclosed\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["support-bundle", "-o", "bundle.zip"]) == 0
    members = _members(tmp_path / "bundle.zip")
    assert "max_threads: [unclosed" in members["bridgeData.yaml"]
    for text_in_bundle in members.values():
        assert not any(value in text_in_bundle for value in values)


def test_damaged_status_and_event_files_cost_only_their_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    (tmp_path / "bridgeData.yaml").write_text(f"api_key: {API_KEY}\ndashboard_enabled: false\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "last-status.json").write_text(json.dumps({"worker": {}, "faults": 5}))
    nested = "[" * 100_000 + "]" * 100_000
    fault = json.dumps({"kind": "job_faulted", "job": "job-1", "reason": "x"})
    (tmp_path / "logs" / "events.jsonl").write_text(f"{nested}\n{fault}\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["support-bundle", "-o", "bundle.zip"]) == 0
    faults = json.loads(_members(tmp_path / "bundle.zip")["faults.json"])
    assert faults["worker"] == [] and [event["job"] for event in faults["event_logs"]] == ["job-1"]


@given(st.binary(max_size=4000), st.integers(min_value=1, max_value=5000))
def test_a_log_tail_is_the_end_of_the_file_cut_at_a_line(tmp_path_factory: pytest.TempPathFactory,
                                                         content: bytes, limit: int) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("logs")
    (folder / "bridge.log").write_bytes(content)
    (folder / "image.png").write_bytes(b"not a log")
    tails = log_tails(folder, limit)
    assert set(tails) == {"bridge.log"}
    tail = tails["bridge.log"]
    assert content.endswith(tail) and len(tail) <= limit
    if len(content) > limit and b"\n" in content[-limit:]:
        assert content[: len(content) - len(tail)].endswith(b"\n")


def test_a_gpu_stack_that_does_not_answer_costs_only_its_part() -> None:
    # A wedged driver looks like a child that never answers: the bundle says so and goes on.
    assert "did not answer" in gpu_stack_in_child(timeout_s=0.01)["gpu_stack_error"]
