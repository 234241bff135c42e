"""Where benchmark figures go: printed, and appended to bench/RESULTS.md with `--write`."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(text: str, *, write: bool) -> None:
    """Print a bench's report; with `write`, also append it to RESULTS.md (with the command in it)."""
    print(text)
    if write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
