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
            raise ConfigError(
                [f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one of them."]
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_hint(problem: str) -> str:
    if "escape" in problem:
        return (
            " In double quotes a backslash starts an escape: write Windows paths in single"
            " quotes ('C:\\models') or with forward slashes (C:/models)."
        )
    if "tab" in problem.lower():
        return " YAML indentation must use spaces, not tabs."
    return ""


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
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = error.problem or str(error)
        raise ConfigError([f"{where}{problem}.{_yaml_hint(problem)}"], str(path)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(["the file must be a mapping of key: value lines."], str(path))
    return {str(key): value for key, value in loaded.items()}
