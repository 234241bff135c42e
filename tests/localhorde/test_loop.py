"""The whole request → pop → upload → submit → status loop over real HTTP, and the command."""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from horde_worker_regen.localhorde import command
from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.config import LocalHordeConfig, load_config
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.localhorde.support import REGEN_AGENT, WEBP_BYTES, pop_body


async def test_full_loop_over_real_http(live_horde: RunningLocalHorde) -> None:
    api = live_horde.api_url
    worker_owner = live_horde.add_user("dreamer", trusted=True, kudos=0)
    client_user = live_horde.add_user("client", kudos=1000)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{api}/v2/generate/async",
            json={"prompt": "a lighthouse ### blurry", "nsfw": False, "params": {"n": 2, "steps": 20}},
            headers={"apikey": client_user.api_key},
        )
        assert resp.status == 202
        request_id = (await resp.json())["id"]

        resp = await session.post(
            f"{api}/v2/generate/pop", json=pop_body("dreamer-1", amount=2), headers={"apikey": worker_owner.api_key}
        )
        job = await resp.json()
        assert resp.status == 200 and len(job["ids"]) == 2
        assert job["r2_uploads"][0].startswith(live_horde.base_url)

        for index, (job_id, url) in enumerate(zip(job["ids"], job["r2_uploads"], strict=True)):
            async with session.put(url, data=WEBP_BYTES + bytes([index])) as put:
                assert put.status == 200
            submitted = await session.post(
                f"{api}/v2/generate/submit",
                json={"id": job_id, "generation": "R2", "state": "ok", "seed": int(job["payload"]["seed"]),
                      "gen_metadata": [{"type": "batch_index", "value": "see_ref", "ref": str(index)}]},
                headers={"apikey": worker_owner.api_key},
            )  # fmt: skip
            assert (submitted.status, await submitted.json()) == (200, {"reward": 4.33})

        check = await (await session.get(f"{api}/v2/generate/check/{request_id}")).json()
        assert check["done"] is True and check["finished"] == 2
        status = await (await session.get(f"{api}/v2/generate/status/{request_id}")).json()
        images = []
        for generation in status["generations"]:
            async with session.get(generation["img"]) as image:
                assert image.status == 200
                images.append(await image.read())
        assert sorted(images) == [WEBP_BYTES + b"\x00", WEBP_BYTES + b"\x01"]

        user = await (await session.get(f"{api}/v2/find_user", headers={"apikey": worker_owner.api_key})).json()
        assert user["kudos"] == pytest.approx(8.66)
        worker = await (await session.get(f"{api}/v2/workers/name/dreamer-1")).json()
        assert worker["requests_fulfilled"] == 2 and worker["bridge_agent"] == REGEN_AGENT
    assert client_user.kudos == pytest.approx(1000 - 8.66)


def test_config_file_with_users_models_requests_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "localhorde.yaml"
    path.write_text(
        """
port: 0
users:
  - {username: alice, api_key: alice-key-000000000000, kudos: 500, trusted: true}
  - {username: bob, roles: [customizer]}
models:
  - {name: Test Checkpoint, baseline: stable_diffusion_xl}
requests:
  - {username: bob, copies: 2, body: {prompt: a cat, models: [Test Checkpoint], params: {n: 3}}}
model_stats:
  day: {Deliberate: 3}
""",
        encoding="utf-8",
    )
    config = load_config(path)
    horde = LocalHorde(config)
    create_app(horde=horde)
    alice = horde.state.user_by_key("alice-key-000000000000")
    assert alice is not None and alice.trusted and alice.kudos == 500
    bob = next(u for u in horde.state.users.values() if u.username == "bob")
    assert bob.has_role("customizer") and len(bob.api_key) == 22
    assert horde.reference.baseline("Test Checkpoint") == "stable_diffusion_xl"
    assert [wp.n for wp in horde.state.requests.values()] == [3, 3]
    assert horde.state.model_stats.snapshot(0)["day"] == {"Deliberate": 3}


def test_json_config_and_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"users": [{"username": "x"}], "sweep_interval": 5}', encoding="utf-8")
    assert load_config(path).sweep_interval == 5
    path.write_text('{"unknown_key": 1}', encoding="utf-8")
    with pytest.raises(ValueError):
        load_config(path)


def test_build_config_applies_overrides_and_a_default_user(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    config = command.build_config(parser.parse_args(["--port", "0", "--fake-clock"]))
    assert config.port == 0 and config.host == "127.0.0.1" and config.fake_clock is True
    assert [user.username for user in config.users] == ["localuser"]
    defaults = command.build_config(parser.parse_args([]))
    assert defaults.port == 7001 and defaults.fake_clock is False


def test_run_reports_a_bad_config_file(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--config", str(tmp_path / "missing.yaml")])) == 2


async def test_serve_listens_prints_keys_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    started: asyncio.Future[tuple[str, LocalHorde]] = asyncio.get_running_loop().create_future()
    config = LocalHordeConfig(port=0, sweep_interval=0, users=[command.DEFAULT_USER])
    task = asyncio.create_task(command.serve(config, on_started=lambda url, horde: started.set_result((url, horde))))
    base_url, horde = await started
    user = next(u for u in horde.state.users.values() if u.username == "localuser")
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{base_url}/api/v2/find_user", headers={"apikey": user.api_key})
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    out = capsys.readouterr().out
    assert f"Local horde listening on {base_url}" in out
    assert f"api_key {user.api_key}" in out and f"{base_url}/api" in out


def test_module_is_runnable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "horde_worker_regen.localhorde", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--port" in result.stdout and "--config" in result.stdout


def test_standalone_server_stops_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "horde_worker_regen.localhorde", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the server is listening
        assert first.startswith("Local horde listening on http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        out = first + process.stdout.read()  # not communicate(): it would skip readline's buffer
    finally:
        process.kill()
    assert process.returncode == 0
    assert "api_key " in out and "Local horde stopped." in out
