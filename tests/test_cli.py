"""The command line as an operator runs it: subcommands, flags, exit codes, no prompts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.cli import UsageError, unknown_command_message, unknown_option_message, with_default_command
from tests.support import REPO_ROOT, SECRET_API_KEY, SECRET_CIVITAI_TOKEN, TEMPLATE
from tests.worker_support import horde_with_users, run_burst, worker_folder

COMMANDS = {"run", "check-config", "local-horde", "demo"}
OFFLINE_ENV = {"HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/stable_diffusion.json"}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The worker CLI in a fresh process, with no stdin (as under systemd or in a container)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), **OFFLINE_ENV, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "horde_worker_regen", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.fixture
def worker_dir(tmp_path: Path, cached_models_dir: Path) -> Path:
    """A worker folder with a filled-in bridgeData.yaml and a cached model reference."""
    settings = yaml.safe_load(TEMPLATE.read_text())
    settings.update(
        {
            "api_key": SECRET_API_KEY,
            "civitai_api_token": SECRET_CIVITAI_TOKEN,
            "dreamer_name": "CLI Test Dreamer",
            "cache_home": str(cached_models_dir),
            "horde_url": "http://127.0.0.1:9/api/",
            "models_to_load": ["TOP 2", "Delibrate"],
        }
    )
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["run"]),
        (["-n", "check-config"], ["run", "-n", "check-config"]),
        (["-c", "x.yaml", "check-config"], ["check-config", "-c", "x.yaml"]),
        (["check-config", "-v"], ["check-config", "-v"]),
        (["-v", "-n", "Dreamer"], ["run", "-v", "-n", "Dreamer"]),
        (["--help"], ["--help"]),
        (["local-horde", "--port", "0"], ["local-horde", "--port", "0"]),
        (["--local"], ["demo"]),
        (["--local", "--fake-backends"], ["demo", "--fake-backends"]),
        (["--nmae", "x"], ["run", "--nmae", "x"]),  # run's own parser names the unknown option
    ],
)
def test_run_is_the_default_subcommand(argv: list[str], expected: list[str]) -> None:
    assert with_default_command(argv, COMMANDS) == expected


def test_check_config_prints_resolved_settings_without_secrets(worker_dir: Path) -> None:
    result = run_cli("check-config", cwd=worker_dir)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert SECRET_API_KEY not in output and SECRET_CIVITAI_TOKEN not in output
    assert "api_key: <redacted>  # file bridgeData.yaml" in result.stdout
    assert "civitai_api_token: <redacted>" in result.stdout
    assert "dreamer_name: CLI Test Dreamer  # file bridgeData.yaml" in result.stdout
    assert "#   - AlbedoBase XL (SDXL)" in result.stdout and "#   - Deliberate" in result.stdout
    assert "unknown model 'Delibrate' is not served (closest known: Deliberate" in result.stdout
    for log in (worker_dir / "logs").glob("*.log"):
        assert SECRET_API_KEY not in log.read_text()


def test_check_config_shows_env_and_cli_overrides(worker_dir: Path) -> None:
    result = run_cli(
        "check-config",
        "-n",
        "Flag Name",
        "--set",
        "max_threads=2",
        "--no-models",
        cwd=worker_dir,
        env={"AIWORKER_MAX_THREADS": "3", "AIWORKER_QUEUE_SIZE": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "dreamer_name: Flag Name  # cli -n" in result.stdout
    assert "max_threads: 2  # cli --set max_threads" in result.stdout
    assert "queue_size: 2  # env AIWORKER_QUEUE_SIZE" in result.stdout


def test_missing_config_gives_next_step_without_waiting_for_input(tmp_path: Path) -> None:
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "no config file at" in result.stderr
    assert "cp " in result.stderr and "bridgeData_template.yaml" in result.stderr
    assert run_cli(cwd=tmp_path).returncode == 2


def test_config_error_exits_2_and_names_the_key(worker_dir: Path) -> None:
    (worker_dir / "bridgeData.yaml").write_text(f"api_key: {SECRET_API_KEY}\nmax_thread: 2\n")
    result = run_cli("run", cwd=worker_dir)
    assert result.returncode == 2
    assert "Did you mean 'max_threads'?" in result.stderr
    assert SECRET_API_KEY not in result.stderr


def test_models_unresolvable_offline_without_cache(worker_dir: Path, tmp_path: Path) -> None:
    result = run_cli("check-config", "--set", f"cache_home={tmp_path / 'empty'}", cwd=worker_dir)
    assert result.returncode == 3
    assert "is not cached at" in result.stdout and "could not be downloaded" in result.stdout


def test_run_refuses_the_anonymous_key(worker_dir: Path) -> None:
    result = run_cli("--set", "api_key=0000000000", cwd=worker_dir)
    assert result.returncode == 1
    assert "anonymous key" in result.stderr
    assert "anonymous key" in (worker_dir / "logs" / "trace.log").read_text()


def test_quiet_hides_info_and_verbose_shows_debug(worker_dir: Path) -> None:
    quiet = run_cli("run", "-q", cwd=worker_dir)
    assert "Configuration read from" not in quiet.stderr
    assert "Cannot start" in quiet.stderr
    normal = run_cli("run", cwd=worker_dir)
    assert "Configuration read from" in normal.stderr
    assert "DEBUG" not in normal.stderr
    verbose = run_cli("run", "-v", cwd=worker_dir)
    assert "DEBUG" in verbose.stderr


def test_version_and_help(tmp_path: Path) -> None:
    assert run_cli("--version", cwd=tmp_path).stdout.startswith("horde-worker-regen ")
    helptext = run_cli("--help", cwd=tmp_path).stdout
    assert all(command in helptext for command in COMMANDS)
    run_help = run_cli("run", "--help", cwd=tmp_path).stdout
    assert "--config" in run_help and "--name" in run_help and "--verbose" in run_help and "--quiet" in run_help


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["chek-config"], "unknown command 'chek-config'; did you mean 'check-config'?"),
        (["-v", "local-hord"], "unknown command 'local-hord'; did you mean 'local-horde'?"),
        (["run", "--nmae", "Dreamer"], "unknown option '--nmae' for 'run'; did you mean '--name'?"),
        (
            ["check-config", "--no-modles"],
            "unknown option '--no-modles' for 'check-config'; did you mean '--no-models'?",
        ),
        (["--set=max_threads=2", "--burts"], "unknown option '--burts' for 'run'; did you mean '--burst'?"),
    ],
)
def test_a_mistyped_command_or_option_names_the_closest_and_exits_2(
    tmp_path: Path, argv: list[str], expected: str
) -> None:
    result = run_cli(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert not (tmp_path / "logs").exists(), "nothing runs before the command line is understood"


def test_a_pasted_secret_is_not_echoed_as_an_unknown_command(tmp_path: Path) -> None:
    result = run_cli(SECRET_API_KEY, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown command" in result.stderr and "check-config" in result.stderr
    assert SECRET_API_KEY not in result.stderr + result.stdout
    result = run_cli("--nmae=" + SECRET_API_KEY, cwd=tmp_path)
    assert result.returncode == 2 and "did you mean '--name'?" in result.stderr
    assert SECRET_API_KEY not in result.stderr + result.stdout


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40))
def test_an_unknown_word_is_echoed_only_beside_a_suggestion(word: str) -> None:
    message = unknown_command_message(word, COMMANDS)
    if "did you mean" in message:
        assert f"unknown command '{word}'" in message
    else:  # the same words whatever was typed: nothing of it is echoed
        assert message == unknown_command_message("0123456789abcdef", COMMANDS)
    option = unknown_option_message(f"--{word}={SECRET_API_KEY}", "run", ["--name", "--config", "--set"])
    assert SECRET_API_KEY not in option


@given(
    st.lists(
        st.sampled_from(
            ["-v", "-q", "--burst", "-n", "x", "--set", "a=1", "check-config", "demo", "--local", "chek", "--zz"]
        ),
        max_size=8,
    )
)
def test_the_subcommand_comes_first_and_the_other_arguments_keep_their_order(argv: list[str]) -> None:
    try:
        arranged = with_default_command(argv, COMMANDS)
    except UsageError:
        assert any(word in {"chek", "x", "a=1"} for word in argv)  # only a bare word is refused
        return
    command, rest = arranged[0], arranged[1:]
    assert command in COMMANDS
    if argv[:1] == ["--local"]:
        assert (command, rest) == ("demo", argv[1:])
    elif command in argv:  # moved to the front from one of its positions
        assert any(rest == argv[:i] + argv[i + 1 :] for i, word in enumerate(argv) if word == command)
    else:
        assert (command, rest) == ("run", argv)


def test_the_top_level_help_shows_the_daily_options(tmp_path: Path) -> None:
    helptext = run_cli("--help", cwd=tmp_path).stdout
    for option in (
        "-c FILE, --config FILE",
        "-n NAME, --name NAME",
        "--set KEY=VALUE",
        "-v, --verbose",
        "-q, --quiet",
        "--local",
    ):
        assert option in helptext, option


async def test_a_busy_dashboard_port_names_its_holder_and_the_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with horde_with_users() as (horde, owner, _):
            folder = worker_folder(tmp_path, horde, owner, dashboard_port=port, dashboard_host="127.0.0.1")
            worker = await run_burst(folder)
    warning = next(line for line in worker.lines if "The dashboard cannot listen" in line)
    assert f"127.0.0.1:{port}" in warning
    assert f"held by pid {os.getpid()} (" in warning  # this test's process holds it
    assert "dashboard_port" in warning and "dashboard_enabled: false" in warning


async def _announced(process: asyncio.subprocess.Process) -> dict[str, str]:
    """The horde_url, api_key and model reference URL that `local-horde` prints at start."""
    assert process.stdout is not None
    found: dict[str, str] = {}
    while len(found) < 3:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        assert line, "local-horde exited before announcing itself"
        if "horde_url for workers: " in line:
            found["horde_url"] = line.split("horde_url for workers: ")[1].strip()
        elif ": api_key " in line:
            found["api_key"] = line.split(": api_key ")[1].strip()
        elif "HORDE_MODEL_REFERENCE_URL=" in line:
            found["reference"] = line.split("HORDE_MODEL_REFERENCE_URL=")[1].strip()
    return found


async def test_the_readme_local_horde_recipe_needs_no_internet(tmp_path: Path) -> None:
    """`local-horde`, a request, then `run --burst` with the fake backends, from an empty models folder:
    the model reference comes from the local horde, and its logs go to its --logs-dir."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ["PYTHONPATH"] = str(REPO_ROOT)
    horde = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "horde_worker_regen",
        "local-horde",
        "--port",
        "0",
        "--logs-dir",
        str(tmp_path / "horde-logs"),
        cwd=tmp_path,
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        announced = await _announced(horde)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{announced['horde_url']}/v2/generate/async",
                headers={"apikey": announced["api_key"]},
                json={"prompt": "a red fox in snow", "params": {"n": 2, "width": 64, "height": 64, "steps": 2}},
            ) as response,
        ):
            assert response.status == 202
        worker = await asyncio.to_thread(
            run_cli,
            "run",
            "--burst",
            "-n",
            "Local Trial",
            "--set",
            f"horde_url={announced['horde_url']}",
            "--set",
            f"api_key={announced['api_key']}",
            "--set",
            "inference_backend=fake",
            "--set",
            "safety_backend=fake",
            "--set",
            "models_to_load=[Deliberate]",
            "--set",
            f"cache_home={tmp_path / 'models'}",
            "--set",
            "dashboard_port=0",
            cwd=tmp_path,
            env={"HORDE_MODEL_REFERENCE_URL": announced["reference"]},
        )
        assert worker.returncode == 0, worker.stderr[-4000:]
        horde.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(horde.wait(), 60) == 0
    finally:
        if horde.returncode is None:
            horde.kill()
            await horde.wait()
    assert "Summary: 2 jobs" in worker.stderr or "Summary: 1 jobs" in worker.stderr, worker.stderr[-4000:]
    assert list((tmp_path / "horde-logs").glob("*.log")), "the local horde logs under its --logs-dir"
