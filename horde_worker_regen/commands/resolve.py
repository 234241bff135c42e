"""The configuration a subcommand runs with: the file, then AIWORKER_* env vars, then CLI flags."""

from __future__ import annotations

import argparse
import os

from horde_worker_regen.config.loader import ResolvedConfig, cli_settings, load_config
from horde_worker_regen.logs.exposure import holds_secret, warn_if_exposed


def resolve_config(args: argparse.Namespace) -> ResolvedConfig:
    """The configuration from the file, then AIWORKER_* env vars, then CLI flags."""
    resolved = load_config(args.config, os.environ, cli_settings(args.set, args.name))
    warn_if_exposed(resolved.path, holds_secret({name: resolved.source_of(name) for name in resolved.settings}))
    return resolved
