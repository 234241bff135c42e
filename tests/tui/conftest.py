"""The dashboard tests' live worker parts (a real pipeline, popper and statistics; children in this process)."""

from tests.dashboard.conftest import _kill_started_children, session

__all__ = ["_kill_started_children", "session"]
