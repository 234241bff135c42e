"""What the terminal UI shows, read back from Textual's own SVG export of its screen, and a bounded wait."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.pilot import Pilot

_SPAN = re.compile(
    r'<text class="[^"]*" x="(?P<x>[\d.]+)" y="[\d.]+" textLength="(?P<length>[\d.]+)" '
    r'clip-path="url\(#terminal-\d+-line-(?P<line>\d+)\)">(?P<text>[^<]*)</text>'
)
WAIT_S = 15.0


def screen_lines(app: App[None]) -> list[str]:
    """The screen's text, one string per terminal row, as `export_screenshot` draws it."""
    rows: dict[int, dict[int, str]] = {}
    for span in _SPAN.finditer(app.export_screenshot()):
        text = html.unescape(span["text"]).replace("\xa0", " ")
        cell = float(span["length"]) / len(text)
        rows.setdefault(int(span["line"]), {})[round(float(span["x"]) / cell)] = text
    lines = []
    for line in range(max(rows, default=-1) + 1):
        chars: list[str] = []
        for column, text in sorted(rows.get(line, {}).items()):
            chars.extend(" " * (column - len(chars)))
            chars[column : column + len(text)] = text
        lines.append("".join(chars).rstrip())
    return lines


def screen_text(app: App[None]) -> str:
    return "\n".join(screen_lines(app))


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run (its HTTP requests, its key handling) until `condition` holds; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause()
