"""`Retry-After` from an untrusted server: seconds or an HTTP date, capped; anything else is ignored."""

from __future__ import annotations

from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.horde.retry_after import MAX_RETRY_AFTER_S, parse_retry_after

NOW = 1_700_000_000.0


@given(st.text(max_size=80))
def test_any_header_is_absent_or_a_wait_within_the_cap(header: str) -> None:
    wait = parse_retry_after(header, NOW)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S


@given(st.integers(min_value=0, max_value=10**30))
def test_whole_seconds_are_honoured_up_to_the_cap(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == min(float(seconds), MAX_RETRY_AFTER_S)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_an_http_date_is_the_time_until_it(offset: int) -> None:
    header = formatdate(NOW + offset, usegmt=True)
    assert parse_retry_after(header, NOW) == min(MAX_RETRY_AFTER_S, max(0.0, float(offset)))


def test_unreadable_and_absurd_values() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("nan", NOW) is None
    assert parse_retry_after("-5", NOW) is None  # not a delay-seconds value at all
    assert parse_retry_after("1e999", NOW) == MAX_RETRY_AFTER_S  # infinite: cut to the cap
    assert parse_retry_after(" 7 ", NOW) == 7.0
    assert parse_retry_after("7" * 100, NOW) is None  # longer than any real header
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00", NOW) is None  # a date without its zone
