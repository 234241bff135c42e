"""Log files, levels, and secrets kept out of every sink."""

from __future__ import annotations

import logging as stdlib_logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from horde_worker_regen.logs.setup import REDACTED, configure_logging, level_for_verbosity, log_file_names
from tests.support import SECRET_API_KEY, SECRET_CIVITAI_TOKEN


@pytest.fixture(autouse=True)
def _restore_loguru() -> Iterator[None]:
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)


def _log_everything_with_secrets() -> None:
    logger.trace(f"trace with key {SECRET_API_KEY}")
    logger.debug(f"debug with token {SECRET_CIVITAI_TOKEN}")
    logger.info(f"header apikey: {SECRET_API_KEY}")
    logger.warning(f"warning {SECRET_API_KEY}")
    try:
        raise RuntimeError(f"request failed for key={SECRET_API_KEY}")
    except RuntimeError:
        logger.exception("something broke")
    stdlib_logging.getLogger("aiohttp.client").error(f"library says {SECRET_API_KEY}")


def test_secrets_are_absent_from_every_sink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    configure_logging(logs, verbosity=2, secrets=[SECRET_API_KEY, SECRET_CIVITAI_TOKEN])
    _log_everything_with_secrets()
    configure_logging(logs, verbosity=2, process_index=1)
    _log_everything_with_secrets()
    logger.remove()
    console = capsys.readouterr().err
    files = {path.name: path.read_text() for path in logs.iterdir()}
    assert set(files) == {"bridge.log", "trace.log", "bridge_1.log", "trace_1.log"}
    for name, text in {**files, "console": console}.items():
        assert SECRET_API_KEY not in text, name
        assert SECRET_CIVITAI_TOKEN not in text, name
        assert REDACTED in text, name
    assert "request failed for key=<redacted>" in files["trace.log"]
    assert "Traceback (most recent call last)" in files["trace.log"]
    assert "library says <redacted>" in files["bridge.log"]


def test_trace_log_keeps_only_warnings_and_errors(tmp_path: Path) -> None:
    configure_logging(tmp_path, verbosity=1, console=False)
    logger.debug("a debug line")
    logger.info("an info line")
    logger.warning("a warning line")
    logger.error("an error line")
    logger.remove()
    trace = (tmp_path / "trace.log").read_text()
    bridge = (tmp_path / "bridge.log").read_text()
    assert "a warning line" in trace and "an error line" in trace
    assert "an info line" not in trace and "a debug line" not in trace
    assert all(line in bridge for line in ("a debug line", "an info line", "a warning line", "an error line"))


@pytest.mark.parametrize(
    ("verbosity", "shown", "hidden"),
    [
        (0, "info", "debug"),
        (1, "debug", "trace"),
        (2, "trace", None),
        (-1, "warning", "info"),
        (-2, "error", "warning"),
    ],
)
def test_verbosity_sets_console_and_bridge_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbosity: int, shown: str, hidden: str | None
) -> None:
    configure_logging(tmp_path, verbosity=verbosity)
    for level in ("trace", "debug", "info", "warning", "error"):
        logger.log(level.upper(), f"line at {level}")
    logger.remove()
    console = capsys.readouterr().err
    bridge = (tmp_path / "bridge.log").read_text()
    for text in (console, bridge):
        assert f"line at {shown}" in text
        if hidden:
            assert f"line at {hidden}" not in text


def test_verbosity_is_clamped() -> None:
    assert level_for_verbosity(7) == "TRACE"
    assert level_for_verbosity(-9) == "ERROR"


def test_child_file_names() -> None:
    assert log_file_names(None) == ("bridge.log", "trace.log")
    assert log_file_names(3) == ("bridge_3.log", "trace_3.log")
