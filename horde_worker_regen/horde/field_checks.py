"""Checks of untrusted JSON values, each naming the field and what was wrong with it.

A check takes the field's path (`payload.loras[2].model`) and its value, and answers a `Problem` or
None. A problem never carries the whole value, only a short, cleaned preview: a hostile horde can
put megabytes or control characters in any field, and the reason goes to the log and back to the
horde in `gen_metadata`. JSON numbers may be huge integers, NaN or infinities (Python's decoder
accepts them), and `true`/`false` are ints to Python: every numeric check rules those out first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

PREVIEW_CHARS = 40
# Control characters (C0, DEL, C1), lone surrogates (not encodable, they break any log or request
# they reach) and the bidirectional overrides that can make a log line read differently.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LONG_INT_BITS = 50


@dataclass(frozen=True)
class Problem:
    """Why one field is outside the contract: where it is, and what was wrong (never the whole value)."""

    field: str
    what: str

    def __str__(self) -> str:
        return f"{self.field}: {self.what}"


Check = Callable[[str, Any], "Problem | None"]


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut), unprintable characters as spaces."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return UNPRINTABLE.sub(" ", cut)


def describe(value: Any) -> str:  # noqa: PLR0911 (one answer per JSON type)
    """A short description of a JSON value for a problem's text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > _LONG_INT_BITS:
            return f"a whole number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        size = f" ({len(value)} characters)" if len(value) > PREVIEW_CHARS else ""
        return f"text {printable(value, PREVIEW_CHARS)!r}{size}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object of {len(value)} field(s)"
    return f"a value of type {type(value).__name__}"


def is_whole(value: Any) -> TypeGuard[int]:
    """True for a JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def text(*, max_chars: int, min_chars: int = 0, plain: bool = False) -> Check:
    """A string of `min_chars`..`max_chars` characters; `plain`: without unprintable characters."""

    def check(path: str, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return Problem(path, f"expected text, got {describe(value)}")
        if len(value) > max_chars:
            return Problem(path, f"text of {len(value)} characters (at most {max_chars} are accepted)")
        if len(value) < min_chars:
            return Problem(path, f"text of {len(value)} characters (at least {min_chars} are needed)")
        if plain and UNPRINTABLE.search(value):
            return Problem(path, f"{describe(value)} contains control characters")
        return None

    return check


def choice(options: Collection[str], what: str) -> Check:
    """One of `options` (a `what`, e.g. "sampler")."""

    def check(path: str, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return Problem(path, f"expected a {what} name, got {describe(value)}")
        if value not in options:
            return Problem(path, f"unknown {what} {printable(value, PREVIEW_CHARS)!r}")
        return None

    return check


def whole(low: int, high: int, step: int = 1) -> Check:
    """An integer in `low`..`high`, a multiple of `step`."""

    def check(path: str, value: Any) -> Problem | None:
        if not is_whole(value):
            return Problem(path, f"expected a whole number, got {describe(value)}")
        if not low <= value <= high:
            return Problem(path, f"{describe(value)} is outside {low}..{high}")
        if value % step:
            return Problem(path, f"{value} is not a multiple of {step}")
        return None

    return check


def number(low: float, high: float) -> Check:
    """A finite number in `low`..`high`."""

    def check(path: str, value: Any) -> Problem | None:
        if not is_number(value):
            return Problem(path, f"expected a finite number, got {describe(value)}")
        if not low <= value <= high:
            return Problem(path, f"{describe(value)} is outside {low:g}..{high:g}")
        return None

    return check


def flag(path: str, value: Any) -> Problem | None:
    """true or false."""
    return None if isinstance(value, bool) else Problem(path, f"expected true or false, got {describe(value)}")


def list_of(item: Check, max_items: int) -> Check:
    """A list of at most `max_items` items, each passing `item` (null items are problems too)."""

    def check(path: str, value: Any) -> Problem | None:
        if not isinstance(value, list):
            return Problem(path, f"expected a list, got {describe(value)}")
        if len(value) > max_items:
            return Problem(path, f"a list of {len(value)} items (at most {max_items} are accepted)")
        for index, entry in enumerate(value):
            if problem := item(f"{path}[{index}]", entry):
                return problem
        return None

    return check


def fields_problem(
    obj: Mapping[str, Any], path: str, checks: Mapping[str, Check], required: Collection[str] = ()
) -> Problem | None:
    """The first field of `obj` outside its check; null counts as absent. Fields without a check are ignored."""
    for name, check in checks.items():
        where = f"{path}.{name}" if path else name
        value = obj.get(name)
        if value is None:
            if name in required:
                return Problem(where, "is missing")
            continue
        if problem := check(where, value):
            return problem
    return None


def record(checks: Mapping[str, Check], required: Collection[str] = ()) -> Check:
    """An object whose known fields pass their checks."""

    def check(path: str, value: Any) -> Problem | None:
        if not isinstance(value, dict):
            return Problem(path, f"expected an object, got {describe(value)}")
        return fields_problem(value, path, checks, required)

    return check


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and objects nest in `value`, counted up to `limit + 1` (no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def shallow_object(max_fields: int, max_depth: int) -> Check:
    """An object of at most `max_fields` fields, nesting at most `max_depth` levels (passed on, never read)."""

    def check(path: str, value: Any) -> Problem | None:
        if not isinstance(value, dict):
            return Problem(path, f"expected an object, got {describe(value)}")
        if len(value) > max_fields:
            return Problem(path, f"an object of {len(value)} fields (at most {max_fields} are accepted)")
        if nesting_depth(value, max_depth) > max_depth:
            return Problem(path, f"nests deeper than {max_depth} levels")
        return None

    return check
