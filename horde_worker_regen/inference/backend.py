"""The interface every inference backend implements, and what each one promises the horde.

A backend's `BackendCapabilities` is the honest list of what it can do, and the bridge-capability
version (horde-api.md §3.9) it therefore claims in the worker's `bridge_agent`: the highest key of
the AI Horde's table whose every capability the backend really implements and is tested on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from horde_worker_regen.processes.messages import GenerationSpec, JobInputs


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend promises: the claimed capability version and the features behind it."""

    name: str
    version: int
    promises: tuple[str, ...]


class InferenceError(RuntimeError):
    """The job cannot be generated; the whole batch is reported as faulted."""


class InferenceBackend(Protocol):
    """Generates every image of one job, WebP-encoded, in batch order."""

    capabilities: BackendCapabilities

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> list[bytes]:
        """Images `0..n_iter-1` (image i with seed `spec.seed_of(i)`); raises InferenceError."""
        ...
