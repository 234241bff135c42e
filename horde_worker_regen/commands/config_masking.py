"""A bridgeData file's own text with every secret blanked, for a file that could not be read as a config.

When the file cannot be parsed or validated nothing has registered its secrets yet, and it may not even
be YAML, so its secret keys are found by the shape of their lines: any key named like a secret
(`api_key`, `civitai_api_token`, its older spelling `CIVIT_API_TOKEN`, `dashboard_token`, …), quoted or
not, after a byte-order mark, as a list item; its value on the same line and every more-indented line
after it (a value written on the next line, a block scalar) are blanked. What YAML can still parse is
walked too, so a secret in a flow mapping (`{api_key: ...}`) is registered for the final redaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from horde_worker_regen.logs.redaction import REDACTED

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
_KEY_LINE = re.compile(
    r"^(?P<lead>\ufeff?[ \t]*(?:-[ \t]+)?)"  # indentation, a byte-order mark, a list item's dash
    r"(?P<quote>[\"']?)(?P<key>[^\"':#\n]+?)(?P=quote)[ \t]*:(?=[ \t]|$)(?P<rest>.*)$"
)


@dataclass(frozen=True)
class MaskedConfig:
    """The text to share, and the secret values found in it (to redact wherever else they appear)."""

    text: str
    secrets: list[str]


def mask_config_text(text: str) -> MaskedConfig:
    """The file's lines with every secret key's value blanked."""
    shown: list[str] = []
    secrets: list[str] = []
    value_indent: int | None = None  # lines indented deeper than this still belong to a secret's value
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" \t\ufeff"))
        if value_indent is not None and (not line.strip() or indent > value_indent):
            secrets.append(line.strip())
            shown.append(line[:indent] + REDACTED if line.strip() else line)
            continue
        value_indent = None
        found = _KEY_LINE.match(line)
        if found is None or not SECRET_NAME.search(found["key"]):
            shown.append(line)
            continue
        secrets.append(_scalar(found["rest"]))
        shown.append(f"{line[: found.start('rest')]} {REDACTED}")
        value_indent = indent
    secrets += _parsed_secrets(text)
    return MaskedConfig("\n".join(shown) + "\n", [secret for secret in secrets if secret])


def _scalar(written: str) -> str:
    """A YAML scalar as written on its line: inside its quotes, or up to a trailing comment."""
    written = written.strip()
    if written[:1] in ("'", '"'):
        closing = written.find(written[0], 1)
        return written[1:closing] if closing > 0 else written[1:]
    return written.split(" #", 1)[0].strip()


def _parsed_secrets(text: str) -> list[str]:
    """The values under secret-named keys wherever YAML still finds them (nothing when it cannot parse)."""
    try:
        loaded = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        return []
    found: list[str] = []
    _walk(loaded, found, depth=0)
    return found


def _walk(value: Any, found: list[str], depth: int) -> None:
    if depth > 50:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and SECRET_NAME.search(key) and isinstance(item, str | int | float):
                found.append(str(item))
            _walk(item, found, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, found, depth + 1)
