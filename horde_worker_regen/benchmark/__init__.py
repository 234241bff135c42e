"""Measuring the worker with real inference against the embedded local horde (`benchmark` subcommand, bench/)."""
