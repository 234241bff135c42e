"""Turning configuration mistakes into messages an operator can act on."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.logs.redaction import SECRET_FIELDS


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        heading = f"Configuration problem in {source}" if source else "Configuration problem"
        super().__init__(heading + ":\n" + "\n".join(f"  - {line}" for line in problems))


def suggest_key(key: str, known: list[str]) -> str | None:
    """The accepted key closest to a misspelt one, if any is close enough."""
    lowered = {name.lower(): name for name in known}
    if key.lower() in lowered:
        return lowered[key.lower()]
    matches = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def unknown_key_message(key: str, known: list[str], where: str) -> str:
    """One line naming an unknown key and the nearest valid one."""
    suggestion = suggest_key(key, known)
    hint = f" Did you mean '{suggestion}'?" if suggestion else " See bridgeData_template.yaml for every key."
    return f"unknown key '{key}' {where}.{hint}"


_PLAIN_TYPE_NAMES: dict[Any, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    SecretStr: "text",
    Path: "a path",
}


def _type_phrase(annotation: Any) -> str:
    """A plain-words name for a field's type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_phrase(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(parts)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return _PLAIN_TYPE_NAMES.get(annotation, "a value of the documented form")


def allowed_values(field_name: str) -> str:
    """What a field accepts, e.g. 'a whole number from 1 to 16'."""
    info = BridgeData.model_fields[field_name]
    phrase = _type_phrase(info.annotation)
    low: Any = None
    high: Any = None
    for meta in info.metadata:
        if isinstance(meta, (Ge, Gt)):
            low = meta.ge if isinstance(meta, Ge) else meta.gt
        elif isinstance(meta, (Le, Lt)):
            high = meta.le if isinstance(meta, Le) else meta.lt
        elif isinstance(meta, MinLen) and meta.min_length > 1:
            phrase += f" of at least {meta.min_length} characters"
        elif isinstance(meta, MaxLen):
            phrase += f" of at most {meta.max_length} characters"
    if low is not None and high is not None:
        return f"{phrase} from {low} to {high}"
    if low is not None:
        return f"{phrase} of at least {low}"
    if high is not None:
        return f"{phrase} of at most {high}"
    return phrase


def _shown_value(field_name: str, value: Any) -> str:
    """The rejected value, hidden when the field holds a secret."""
    if field_name in SECRET_FIELDS:
        return "<redacted>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_unset(value: Any) -> bool:
    """Whether a rejected value is really an absent one (a secret left out, or set to nothing)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == ""


def failing_fields(error: ValidationError) -> set[str]:
    """The top-level fields a validation error is about."""
    return {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}


def describe_validation_error(
    error: ValidationError, spelling: dict[str, str], labels: dict[str, str] | None = None
) -> list[str]:
    """One line per invalid value: where it was set, the value, what is allowed.

    `spelling` maps a field to the key as the operator wrote it; `labels` maps a field set outside the
    file to where it was set instead (an env var's name, a --set flag), so the line points there.
    """
    return [_describe_one(detail, spelling, labels or {}) for detail in error.errors()]


# Inside a block (a custom model, a GPU override, a post-processor source) a key that is missing or
# unknown is named by its place; the whole block's value would only repeat what the operator wrote.
_NESTED_KEY_REASONS = {
    "missing": "is missing; it is required here",
    "extra_forbidden": "is not a key this block accepts (see bridgeData_template.yaml)",
}


def _describe_one(detail: ErrorDetails, spelling: dict[str, str], labels: dict[str, str]) -> str:
    location = [str(part) for part in detail["loc"]]
    if len(location) > 2 and location[-1] == "[key]":
        location.pop()  # pydantic's mark of a mapping's key it refused, after the key: the key says where
    reason = detail["msg"].removeprefix("Value error, ")
    if not location:
        return f"{reason}."  # a rule across several keys: the reason names them
    field_name = location[0]
    where = ".".join([spelling.get(field_name, field_name), *location[1:]])
    label = labels.get(field_name)
    if label:
        where = label if len(location) == 1 else f"{label} (at {where})"
    if field_name not in BridgeData.model_fields:
        return f"{where}: {reason}"
    if field_name in SECRET_FIELDS and _is_unset(detail.get("input")):
        # "<redacted> is not valid" would suggest a value was given; nothing was.
        return f"{where} is not set: {reason}."
    if len(location) > 1 and detail["type"] in _NESTED_KEY_REASONS:
        return f"{where} {_NESTED_KEY_REASONS[detail['type']]}."
    value = _shown_value(field_name, detail.get("input"))
    if len(location) > 1:
        return f"{where}: {value} is not valid: {reason}."
    return f"{where}: {value} is not valid ({reason}); allowed: {allowed_values(field_name)}."
