"""`check-config`: validate bridgeData and print the settings the worker would run with.

The output is valid YAML (secrets replaced by <redacted>), each line annotated with where
its value came from, followed by notes and the resolved model list.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.loader import ResolvedConfig
from horde_worker_regen.config.meta_instructions import MetaInstructionError, ModelSelection
from horde_worker_regen.logging import REDACTED, configure_logging
from horde_worker_regen.models.reference_cache import ReferenceUnavailable
from horde_worker_regen.models.selection import select_models

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


def check_config_command(args: argparse.Namespace) -> int:
    """Print the resolved configuration; exit 2 on a config error, 3 if models cannot be resolved."""
    from horde_worker_regen.cli import resolve_config

    resolved = resolve_config(args)
    configure_logging(args.logs_dir, args.verbosity - 1, secrets=resolved.data.secrets())
    where = f"{resolved.path}" if resolved.file_found else f"environment only ({resolved.path} not found)"
    print(f"# Configuration from {where}: valid.")
    print(render_config(resolved))
    for note in resolved.notes:
        print(f"# note: {note.key} {note.message}")
    if args.no_models:
        return 0
    try:
        selection = asyncio.run(select_models(resolved.data))
    except (ReferenceUnavailable, MetaInstructionError) as error:
        print(f"# ERROR: models cannot be resolved: {error}")
        return EXIT_MODELS_UNRESOLVED
    print(render_selection(selection))
    return 0 if selection.models else EXIT_MODELS_UNRESOLVED
