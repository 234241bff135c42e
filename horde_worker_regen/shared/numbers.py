"""Numbers as read from untrusted JSON (the worker's answer to the terminal UI, a history file left on disk):
another version, a proxy, a bug or a damaged file may put anything where a number belongs, and Python's json
reads `NaN`, `Infinity`, `1e999` and integers of any size."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number; None for anything else (a string, a bool, nan, ±inf, an
    integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
