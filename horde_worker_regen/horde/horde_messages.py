"""Messages the horde sends its workers with every pop answer (horde-api.md §1.2).

`messages` is a list of `{"id", "message", "origin", "expiry"}`: notes from moderators or the horde
to this worker, or to every worker. They are diagnostics: an entry that is not such an object is
skipped, and never faults a job. Their text is the horde's, shown to the operator, so it is cleaned
of control characters and cut short before it reaches a log line or the dashboard.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from horde_worker_regen.horde.field_checks import UNPRINTABLE, printable

MAX_MESSAGES_READ = 20  # per pop answer
MAX_MESSAGE_CHARS = 500
MAX_ORIGIN_CHARS = 40
MAX_ID_CHARS = 64
MAX_EXPIRY_CHARS = 64
MESSAGES_KEPT = 20
IDS_REMEMBERED = 1000


@dataclass(frozen=True)
class HordeMessage:
    """One message from the horde, its text cleaned and length-capped."""

    id: str
    message: str
    origin: str = ""
    expiry: str | None = None


def _message_of(entry: Any) -> HordeMessage | None:
    if not isinstance(entry, dict):
        return None
    message_id, message = entry.get("id"), entry.get("message")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_CHARS or UNPRINTABLE.search(message_id):
        return None
    text = printable(message, MAX_MESSAGE_CHARS).strip() if isinstance(message, str) else ""
    if not text:
        return None
    origin, expiry = entry.get("origin"), entry.get("expiry")
    return HordeMessage(
        id=message_id,
        message=text,
        origin=printable(origin, MAX_ORIGIN_CHARS) if isinstance(origin, str) else "",
        expiry=printable(expiry, MAX_EXPIRY_CHARS) if isinstance(expiry, str) else None,
    )


def parse_messages(raw: Any) -> tuple[HordeMessage, ...]:
    """The valid messages of a pop answer's `messages` (anything else: none); never raises."""
    if not isinstance(raw, list):
        if raw is not None:
            logger.debug("The pop answer's messages are not a list; ignored")
        return ()
    messages = tuple(message for entry in raw[:MAX_MESSAGES_READ] if (message := _message_of(entry)) is not None)
    if len(messages) < min(len(raw), MAX_MESSAGES_READ):
        logger.debug(f"{min(len(raw), MAX_MESSAGES_READ) - len(messages)} message(s) from the horde not understood")
    return messages


class HordeMessageBoard:
    """The messages seen, newest last (at most `kept`); each is logged once, the first time it is seen."""

    def __init__(self, kept: int = MESSAGES_KEPT, remembered: int = IDS_REMEMBERED) -> None:
        self.messages: deque[HordeMessage] = deque(maxlen=kept)
        # Ids already logged, oldest first; bounded, so a horde inventing ids cannot grow it forever.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    def note(self, messages: Iterable[HordeMessage]) -> list[HordeMessage]:
        """Record the messages of one answer; returns those seen for the first time."""
        new = []
        for message in messages:
            if message.id in self._seen:
                self._seen.move_to_end(message.id)
                continue
            self._seen[message.id] = None
            if len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
            self.messages.append(message)
            new.append(message)
            logger.warning(f"Message from the horde ({message.origin or 'unknown origin'}): {message.message}")
        return new
