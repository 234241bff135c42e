"""The caption form's options, read from the requester's payload without ever failing on it.

The horde passes the requester's payload through as strings (horde-v13-and-alchemy.md §3.1), so any
value may be missing, malformed or absurd. Each option falls back to its default when it does not
parse as a finite number, and is clamped into its range when it does: a bad payload changes the
caption at most, never fails the form. The defaults are the ones the legacy alchemist used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

NUM_BEAMS = (7, 1, 16)  # (default, lowest, highest)
MIN_LENGTH = (20, 1, 100)
MAX_LENGTH_MARGIN = 30  # the default max_length is min_length + this
MAX_LENGTH_CAP = 150  # tokens; BLIP's decoder takes 512, captions never need that many
TOP_P = (0.9, 0.01, 1.0)
REPETITION_PENALTY = (1.4, 1.0, 3.0)


@dataclass(frozen=True, slots=True)
class CaptionOptions:
    """How BLIP generates one caption (lengths in tokens, the start token included)."""

    num_beams: int = NUM_BEAMS[0]
    min_length: int = MIN_LENGTH[0]
    max_length: int = MIN_LENGTH[0] + MAX_LENGTH_MARGIN
    top_p: float = TOP_P[0]
    repetition_penalty: float = REPETITION_PENALTY[0]


def _number(payload: Mapping[str, object], key: str) -> float | None:
    """The payload's value for `key` as a finite number, or None (missing, not a number, NaN)."""
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return None if math.isnan(number) else number


def _clamped(number: float, lowest: float, highest: float) -> float:
    return min(max(number, lowest), highest)


def _integer(payload: Mapping[str, object], key: str, default: int, lowest: int, highest: int) -> int:
    number = _number(payload, key)
    return default if number is None else round(_clamped(number, lowest, highest))


def _real(payload: Mapping[str, object], key: str, default: float, lowest: float, highest: float) -> float:
    number = _number(payload, key)
    return default if number is None else _clamped(number, lowest, highest)


def caption_options(payload: Mapping[str, object]) -> CaptionOptions:
    """The caption options a form's payload asks for: defaults where it says nothing usable, clamped values
    where it asks too much; max_length is never below min_length."""
    min_length = _integer(payload, "min_length", *MIN_LENGTH)
    max_length = _integer(payload, "max_length", min(min_length + MAX_LENGTH_MARGIN, MAX_LENGTH_CAP), 1, MAX_LENGTH_CAP)
    return CaptionOptions(
        num_beams=_integer(payload, "num_beams", *NUM_BEAMS),
        min_length=min_length,
        max_length=max(max_length, min_length),
        top_p=_real(payload, "top_p", *TOP_P),
        repetition_penalty=_real(payload, "repetition_penalty", *REPETITION_PENALTY),
    )
