"""Secrets are replaced in every spelling a library may print them in, and in streams split anywhere."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horde_worker_regen.logs import redaction
from horde_worker_regen.logs.redaction import MIN_SECRET_LENGTH, REDACTED, RedactingStream, redact, register_secrets

# Keys of every shape an operator might paste: quotes, blanks, newlines, non-ASCII letters.
KEY_ALPHABET = st.sampled_from(list("abcXYZ019-_ '\"\\\n\téкл漢"))
SECRETS = st.text(KEY_ALPHABET, min_size=MIN_SECRET_LENGTH + 2, max_size=40).filter(
    lambda key: key.strip() == key and len(set(key)) > 3
)
SURROUNDINGS = st.text(st.sampled_from(list("mn ,:=[]'\"")), max_size=12)


@pytest.fixture(autouse=True, scope="module")
def _secrets_forgotten_afterwards() -> Iterator[None]:
    """The random secrets registered here would redact parts of other tests' output: forget them."""
    secrets, ordered = set(redaction._secrets), list(redaction._ordered)
    yield
    with redaction._lock:
        redaction._secrets.clear()
        redaction._secrets.update(secrets)
        redaction._ordered[:] = ordered


def _printed_forms(secret: str) -> list[str]:
    return [secret, repr(secret), ascii(secret), json.dumps(secret), f"input_value={secret!r}"]


@settings(max_examples=60, deadline=None)
@given(SECRETS, SURROUNDINGS, SURROUNDINGS)
def test_a_registered_secret_never_survives_in_any_printed_form(secret: str, before: str, after: str) -> None:
    register_secrets([secret])
    for form in _printed_forms(secret):
        text = redact(before + form + after)
        assert secret not in text
        assert repr(secret)[1:-1] not in text
        assert REDACTED in text


@settings(max_examples=40, deadline=None)
@given(SECRETS, st.integers(min_value=1, max_value=30))
def test_a_stream_redacts_a_secret_written_in_pieces(secret: str, cut: int) -> None:
    register_secrets([secret])
    target = io.StringIO()
    stream = RedactingStream(target)
    line = f"the key is {secret} and nothing else\n"
    cut = min(cut, len(line) - 1)
    stream.write(line[:cut])
    stream.write(line[cut:])
    stream.write("a partial line")
    stream.flush()
    assert secret not in target.getvalue()
    assert target.getvalue().endswith("a partial line")


def test_values_that_are_not_text_are_registered_by_their_text() -> None:
    register_secrets([98765432101234, None, True])
    assert redact("key 98765432101234") == f"key {REDACTED}"
    assert redact("True") == "True"


def test_short_values_are_not_secrets() -> None:
    register_secrets(["abc"])
    assert redact("abc abcd") == "abc abcd"
