"""Reading bridgeData.yaml strictly: duplicate keys and bad escapes are reported with their line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from horde_worker_regen.config.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping holding the same key twice."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError([f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one of them."])
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# PyYAML's wording, and what it usually means in a bridgeData file. Checked in order.
_PLAIN_WORDS: tuple[tuple[str, str], ...] = (
    (
        "mapping values are not allowed",
        "a ':' where none can be: quote a value that holds ': ', or indent this line like the key above it",
    ),
    ("could not find expected ':'", "a line without its ':' (every setting is written key: value)"),
    ("found unexpected end of stream", "a quote that is never closed"),
    ("unknown escape character", "a backslash in double quotes"),
    ("cannot start any token", "a character that cannot start a value here"),
    ("expected ',' or ']'", "a list opened with '[' that is not closed with ']'"),
    ("expected ',' or '}'", "a mapping opened with '{' that is not closed with '}'"),
    ("expected <block end>", "indentation that does not line up with the lines above"),
    ("undefined alias", "a value starting with '*', which YAML reads as an alias: put it in quotes"),
)
# Keys whose line is never quoted back as it is: the value is a secret.
_SECRET_KEYS = ("api_key", "civitai_api_token", "civit_api_token", "dashboard_token")
_MAX_QUOTED = 120


def _yaml_hint(problem: str) -> str:
    if "escape" in problem:
        return (
            " In double quotes a backslash starts an escape: write Windows paths in single"
            " quotes ('C:\\models') or with forward slashes (C:/models)."
        )
    if "\\t" in problem or "tab" in problem.lower():
        return " YAML indentation must use spaces, not tabs."
    return ""


def _plain(problem: str) -> str:
    return next((plain for wording, plain in _PLAIN_WORDS if wording in problem), "text that is not valid YAML")


def _holds_secret(line: str) -> bool:
    return line.strip().split(":", 1)[0].strip().strip("'\"").lower() in _SECRET_KEYS


def _quoted(lines: list[str], index: int, column: int | None) -> str:
    """Line `index` (0-based) as shown under the message, with a caret under `column`; secrets hidden."""
    text = lines[index].rstrip("\r\n")
    if _holds_secret(text):
        text = text[: text.index(":") + 1] + " <redacted>" if ":" in text else "<redacted>"
        column = None
    elif len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 3] + "..."
    number = f"{index + 1:>5}"
    shown = f"\n    {number} | {text.expandtabs(1)}"
    if column is not None and column <= len(text):
        shown += f"\n    {' ' * len(number)} | {' ' * column}^"
    return shown


def describe_yaml_error(error: yaml.MarkedYAMLError, text: str, name: str) -> str:
    """Where the YAML breaks, in plain words, with the offending line quoted (and the line it started on)."""
    problem = error.problem or str(error)
    lines = text.splitlines()
    mark = error.problem_mark
    explained = f"{_plain(problem)} (YAML says: {problem}).{_yaml_hint(problem)}"
    if mark is None:
        return f"{name}: {explained}"
    if mark.line < len(lines):
        where = f"{name}, line {mark.line + 1}, column {mark.column + 1}"
        quoted = _quoted(lines, mark.line, mark.column)
        if _holds_secret(lines[mark.line]):
            explained = f"{_plain(problem)}.{_yaml_hint(problem)}"  # PyYAML's wording may quote part of it
    else:
        where, quoted = f"{name}, at the end of the file (line {len(lines)})", ""
    started = error.context_mark
    if started is not None and started.line != mark.line and started.line < len(lines):
        quoted += f"\n    which started at line {started.line + 1}:" + _quoted(lines, started.line, started.column)
    return f"{where}: {explained}{quoted}"


def _describe_control_character(error: yaml.reader.ReaderError, text: str, name: str) -> str:
    line = text.count("\n", 0, error.position) + 1
    column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
    code = error.character if isinstance(error.character, int) else ord(error.character)
    return (
        f"{name}, line {line}, column {column}: a control character (code {code:#04x}) that YAML does not "
        "allow; delete it."
    )


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError([f"the file is not UTF-8 text ({error.reason})."], str(path)) from None
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as error:
        raise ConfigError(error.problems, str(path)) from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError([describe_yaml_error(error, text, path.name)], str(path)) from None
    except yaml.reader.ReaderError as error:  # a control character, which YAML does not allow anywhere
        raise ConfigError([_describe_control_character(error, text, path.name)], str(path)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(["the file must be a mapping of key: value lines."], str(path))
    return {str(key): value for key, value in loaded.items()}
