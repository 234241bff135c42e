"""Messages from the horde: read leniently, cleaned, kept (the latest few) and told once each."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from horde_worker_regen.horde.horde_messages import (
    MAX_MESSAGE_CHARS,
    HordeMessage,
    HordeMessageBoard,
    parse_messages,
)


def test_a_message_is_cleaned_and_cut_short() -> None:
    raw = [{"id": "m1", "message": "line one\nline\x00two \u202eevil" + "x" * 5000, "origin": "mod\r\nerator"}]
    [message] = parse_messages(raw)
    assert message.message.startswith("line one line two  evil")
    assert len(message.message) == MAX_MESSAGE_CHARS + 1 and message.message.endswith("…")
    assert message.origin == "mod  erator" and message.expiry is None


def test_the_board_keeps_the_latest_messages_and_reports_each_id_once() -> None:
    board = HordeMessageBoard(kept=3, remembered=10)
    first = [HordeMessage("a", "hello"), HordeMessage("b", "there")]
    assert board.note(first) == first
    assert board.note([HordeMessage("a", "hello"), HordeMessage("c", "new")]) == [HordeMessage("c", "new")]
    assert board.note([HordeMessage("d", "four")]) == [HordeMessage("d", "four")]
    assert [message.id for message in board.messages] == ["b", "c", "d"]  # newest last, bounded


def test_the_board_remembers_a_bounded_number_of_ids() -> None:
    board = HordeMessageBoard(kept=2, remembered=2)
    board.note([HordeMessage("a", "1"), HordeMessage("b", "2"), HordeMessage("c", "3")])
    assert board.note([HordeMessage("a", "1")]) == [HordeMessage("a", "1")]  # forgotten, so told again


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
_ENTRY = st.fixed_dictionaries(
    {"id": _JSON | st.text(min_size=1, max_size=10), "message": _JSON | st.text()},
    optional={"origin": _JSON, "expiry": _JSON},
)


@settings(max_examples=200, deadline=None)
@given(raw=_JSON | st.lists(_ENTRY | _JSON, max_size=30))
def test_any_messages_field_gives_only_sound_messages(raw: Any) -> None:
    messages = parse_messages(raw)
    assert len(messages) <= 20
    for message in messages:
        assert isinstance(message, HordeMessage) and message.id and message.message.strip()
        assert not any(ord(char) < 32 for char in message.message + message.origin)
        assert len(message.message) <= MAX_MESSAGE_CHARS + 1
