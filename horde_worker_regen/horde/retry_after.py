"""Reading a `Retry-After` header: how long the horde (or R2) asks us to wait before the next try.

The horde's rate limiter sends whole seconds (horde-api.md §1); RFC 9110 also allows an HTTP date.
The header is untrusted: anything that is neither counts as absent, a negative wait is none, and a
wait longer than `MAX_RETRY_AFTER_S` is cut to it, so that a broken or hostile answer cannot stall
the worker. (Callers keep their own floor, so that `Retry-After: 0` is no tight loop either.)
"""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime

# The longest window the horde's limiter uses is a minute (90/min, 30/min; §3.1): a longer wait is
# never what a rate limit means, and a job's deadline bounds every wait anyway.
MAX_RETRY_AFTER_S = 60.0
_MAX_HEADER_CHARS = 64


def parse_retry_after(header: str | None, now: float) -> float | None:
    """Seconds to wait, in [0, MAX_RETRY_AFTER_S]; None if the header is absent or unreadable.

    `now` is the wall-clock time (`time.time()`), used only for the HTTP-date form.
    """
    if header is None or len(header) > _MAX_HEADER_CHARS:
        return None
    text = header.strip()
    seconds = _seconds(text) if text[:1].isdigit() else _until_date(text, now)
    if seconds is None or math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))  # an infinite wait is cut too


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _until_date(text: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP date is always GMT; a date without a zone is not one
        return None
    return moment.timestamp() - now
