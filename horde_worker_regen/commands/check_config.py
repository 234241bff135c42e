"""`check-config`: validate bridgeData and print the settings the worker would run with.

The output is valid YAML (secrets replaced by <redacted>), each line annotated with where
its value came from, followed by notes, the roles and the alchemist's forms (offered at start or why not,
`alchemy_explained`) and the resolved model list. "Valid" means `run` would
start: the same start-up checks (`startup_checks`) refuse the same settings with the same message.
Exit status: 0 valid, 2 a configuration `run` refuses, 3 models that cannot be resolved.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from horde_worker_regen.commands.alchemy_explained import explain_alchemy, post_processors_on_disk, render_alchemy
from horde_worker_regen.commands.startup_checks import ModelsUnresolved, StartupError, check_startup, refuse_settings
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.loader import ResolvedConfig
from horde_worker_regen.logs.setup import REDACTED, configure_logging
from horde_worker_regen.models.meta_instructions import ModelSelection

EXIT_VALID = 0
EXIT_REFUSED = 2
EXIT_MODELS_UNRESOLVED = 3


def _plain(value: Any) -> Any:
    """A value as YAML can write it, with secrets hidden."""
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def render_config(resolved: ResolvedConfig) -> str:
    """The resolved configuration as annotated YAML, one key per line."""
    lines = []
    data: BridgeData = resolved.data
    for field_name in BridgeData.model_fields:
        value = _plain(getattr(data, field_name))
        text = yaml.safe_dump({field_name: value}, default_flow_style=True, sort_keys=False, width=10_000)
        text = text.strip().removeprefix("{").removesuffix("}")
        lines.append(f"{text}  # {resolved.source_of(field_name)}")
    return "\n".join(lines)


def render_selection(selection: ModelSelection) -> str:
    """The models to be served, unknown names with their closest matches, and notes."""
    lines = [f"# {len(selection.models)} models to serve:"]
    lines += [f"#   - {name}" for name in selection.models]
    for name, closest in selection.unknown.items():
        hint = f"closest known: {', '.join(closest)}" if closest else "no similar name in the model reference"
        lines.append(f"# WARNING: unknown model '{name}' is not served ({hint}).")
    lines += [f"# note: {note}" for note in selection.notes]
    return "\n".join(lines)


def render_refusal(error: StartupError) -> str:
    """The message `run` would stop with, as YAML comments."""
    first, *rest = str(error).splitlines() or [type(error).__name__]
    return "\n".join([f"# ERROR: Cannot start: {first}", *(f"#   {line.strip()}" for line in rest)])


def _verdict(data: BridgeData, resolve_models: bool, shown: list[str]) -> tuple[int, StartupError | None]:
    """Run the start-up checks; the selection's lines are added to `shown` as soon as it is known."""
    try:
        if resolve_models:
            asyncio.run(check_startup(data, lambda selection: shown.append(render_selection(selection))))
        else:
            refuse_settings(data)
    except ModelsUnresolved as error:
        return EXIT_MODELS_UNRESOLVED, error
    except StartupError as error:
        return EXIT_REFUSED, error
    return EXIT_VALID, None


def check_config_command(args: argparse.Namespace) -> int:
    """Print the resolved configuration and whether `run` would start with it; returns the exit status."""
    from horde_worker_regen.commands.resolve import resolve_config

    resolved = resolve_config(args)
    configure_logging(args.logs_dir, args.verbosity - 1, secrets=resolved.data.secrets())
    shown: list[str] = []
    status, error = _verdict(resolved.data, not args.no_models, shown)
    where = f"{resolved.path}" if resolved.file_found else f"environment only ({resolved.path} not found)"
    verdict = "valid." if error is None else "refused: the worker would not start (see ERROR below)."
    print(f"# Configuration from {where}: {verdict}")
    print(render_config(resolved))
    for note in resolved.notes:
        print(f"# note: {note.key} {note.message}")
    on_disk = asyncio.run(post_processors_on_disk(resolved.data)) if resolved.data.alchemist else frozenset[str]()
    print(render_alchemy(explain_alchemy(resolved.data, on_disk)))
    for block in shown:
        print(block)
    if error is not None:
        print(render_refusal(error))
    return status
