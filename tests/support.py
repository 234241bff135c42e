"""Constants and small helpers shared by tests."""

from __future__ import annotations

import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEMPLATE = REPO_ROOT / "bridgeData_template.yaml"
# A key of the real form (22 characters) that must never show up in any output.
SECRET_API_KEY = "Zq8secretKEYzq8secret1"
SECRET_CIVITAI_TOKEN = "civitai-token-5f1e9d0c7b"


def unused_port() -> int:
    """A loopback port nothing listens on right now (bound, read and closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
