"""The terminal UI's parts on their own: the held console, the polled trends, the `tui` command's address,
a GPU's line."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from horde_worker_regen.cli import build_parser, parse_arguments
from horde_worker_regen.commands.tui import _address, dashboard_url
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.tui.console_tail import ConsoleTail
from horde_worker_regen.tui.render import telemetry_text
from horde_worker_regen.tui.trends import IMAGES, KUDOS, Trends

KEY = "k" * 22


def test_the_console_prints_until_held_keeps_lines_while_held_and_replays_the_last_ones() -> None:
    terminal = io.StringIO()
    tail = ConsoleTail(terminal, kept=3)
    tail.write("before\n")
    tail.hold()
    tail.write("\x1b[32mone\x1b[0m\ntwo\n")
    tail.write("thr")
    tail.write("ee\nfour\n")
    assert terminal.getvalue() == "before\n"  # nothing over the screen
    assert tail.last(2) == ["three", "four"]
    tail.release(replayed=2)
    tail.write("after\n")
    assert terminal.getvalue() == "before\nthree\nfour\nafter\n"


def _snapshot(images: int, kudos_per_hour: float) -> dict[str, object]:
    return {"totals": {"images": images, "kudos_per_hour": kudos_per_hour}}


def test_polled_trends_measure_images_per_minute_over_the_last_minute() -> None:
    trends = Trends()
    trends.observe(_snapshot(0, 0.0), now=0.0)
    for second in range(10, 130, 10):
        trends.observe(_snapshot(second // 10, 100.0 + second), now=float(second))  # one image every 10 s
    assert trends.latest(IMAGES) == pytest.approx(6.0)
    assert trends.values(KUDOS)[-1] == 220.0
    trends.observe(_snapshot(0, 0.0), now=130.0)  # the worker restarted: its count begins again
    trends.observe(_snapshot(2, 0.0), now=150.0)
    assert trends.latest(IMAGES) == pytest.approx(6.0)
    assert trends.newest_time is None  # no history asked for: the polled samples make the trends


def test_history_replaces_the_polled_samples_and_keeps_only_newer_points() -> None:
    trends = Trends()
    trends.observe(_snapshot(1, 50.0), now=5.0)
    trends.add_history({"series": {KUDOS: [[1.0, 10.0], [2.0, 20.0]], IMAGES: [[2.0, 1.5], "bad"]}})
    trends.add_history({"series": {KUDOS: [[2.0, 20.0], [3.0, 30.0]]}})
    trends.observe(_snapshot(9, 99.0), now=6.0)  # ignored once the worker's own record is used
    assert trends.values(KUDOS) == [10.0, 20.0, 30.0] and trends.values(IMAGES) == [1.5]
    assert trends.newest_time == 3.0


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [("127.0.0.1", 7070, "http://127.0.0.1:7070/"), ("0.0.0.0", 8080, "http://127.0.0.1:8080/"),
     ("::", 7070, "http://[::1]:7070/"), ("::1", 7071, "http://[::1]:7071/")],
)  # fmt: skip
def test_the_dashboard_address_is_read_from_bridge_data(host: str, port: int, url: str) -> None:
    data = BridgeData(api_key=KEY, dashboard_host=host, dashboard_port=port, dashboard_token="t" * 16)
    assert dashboard_url(data) == url


def test_an_address_that_cannot_be_known_asks_for_url() -> None:
    with pytest.raises(ConfigError, match="pass --url"):
        dashboard_url(BridgeData(api_key=KEY, dashboard_port=0))
    with pytest.raises(ConfigError, match="dashboard_enabled is false"):
        dashboard_url(BridgeData(api_key=KEY, dashboard_enabled=False))


def test_tui_takes_the_token_from_bridge_data_and_the_url_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "bridgeData.yaml"
    config.write_text(f"api_key: {KEY}\ndashboard_port: 7444\ndashboard_token: {'s' * 20}\n")
    args = parse_arguments(build_parser(), ["tui", "-c", str(config)])
    assert _address(args) == ("http://127.0.0.1:7444/", "s" * 20)
    remote = argparse.Namespace(url="http://box:7070/", token=None, config=tmp_path / "absent.yaml")
    assert _address(remote) == ("http://box:7070/", None)


@pytest.mark.parametrize(
    ("url", "sent"),
    [("http://127.0.0.1:7444/", True), ("http://127.0.0.1:7444", True), ("https://evil.example:7444/", False),
     ("http://127.0.0.1:7445/", False), ("http://127.0.0.1/", False), ("http://127.0.0.1:notaport/", False),
     ("http://localhost:7444/", True), ("http://[::1]:7444/", True), ("http://localhost.evil.example:7444/", False)],
)  # fmt: skip
def test_the_token_from_bridge_data_goes_only_to_the_dashboard_bridge_data_names(
    tmp_path: Path, url: str, sent: bool
) -> None:
    config = tmp_path / "bridgeData.yaml"
    config.write_text(f"api_key: {KEY}\ndashboard_host: 0.0.0.0\ndashboard_port: 7444\ndashboard_token: {'s' * 20}\n")
    args = parse_arguments(build_parser(), ["tui", "-c", str(config), "--url", url])
    assert _address(args) == (url, "s" * 20 if sent else None)
    given = parse_arguments(build_parser(), ["tui", "-c", str(config), "--url", url, "--token", "g" * 16])
    assert _address(given) == (url, "g" * 16)  # a token given on the command line goes where it is told


def test_run_takes_tui_as_a_flag() -> None:
    args = parse_arguments(build_parser(), ["--tui", "-n", "Fox"])
    assert (args.command, args.tui, args.name) == ("run", True, "Fox")


def _gpu(index: int, name: str, used: bool) -> dict[str, object]:
    return {"index": index, "name": name, "vram_used_mb": 2_048.0, "vram_total_mb": 8_192.0, "utilisation_pct": 5.0,
            "temperature_c": 40.0, "power_w": 30.0, "power_limit_w": 150.0, "used": used}  # fmt: skip


def test_a_gpu_the_worker_does_not_use_is_shown_dimmed_and_labelled_not_used() -> None:
    telemetry = {"available": True, "gpus": [_gpu(0, "RTX 4090", True), _gpu(1, "GTX 1070", False)],
                 "kudos_per_kwh": None, "note": None, "host": None}  # fmt: skip
    text = telemetry_text({"telemetry": telemetry})
    used, unused = text.plain.splitlines()
    assert used.startswith("GPU0 ") and "not used" not in used
    assert unused.startswith("GPU1 ") and unused.endswith("GTX 1070  not used")
    dim = [(span.start, span.end) for span in text.spans if "dim" in str(span.style)]
    assert any(start <= len(used) + 1 and end >= len(text) for start, end in dim), dim  # the whole line
    assert not any(start == 0 for start, _ in dim), dim  # the used GPU's figures are not dimmed
