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
from horde_worker_regen.commands.bundle_parts import log_tails, masked_config_text, secrets_in_config_text
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


_ONE_LINE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
_KEYS = st.sampled_from(["api_key", "civitai_api_token", "dashboard_token", "dreamer_name"])


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


@given(st.lists(_KEYS, min_size=1), st.lists(st.text(alphabet=_ONE_LINE, min_size=6), min_size=1))
def test_masking_a_config_text_leaves_no_secret_field_value(keys: list[str], values: list[str]) -> None:
    lines = [f"{key}: {value}" for key, value in zip(keys, values * len(keys), strict=False)]
    masked = masked_config_text("\n".join(lines)).splitlines()
    for key, line in zip(keys, masked, strict=False):
        if key == "dreamer_name":
            continue
        assert line.startswith(f"{key}:") and line.split(":", 1)[1].strip() == REDACTED
    found = secrets_in_config_text("\n".join(lines))
    assert len(found) == sum(key != "dreamer_name" for key in keys)


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
