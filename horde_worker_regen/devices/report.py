"""What an inference child reports of the GPU it is pinned to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """The GPU an inference child is pinned to, as the child measured it when it came up (MB)."""

    index: int
    name: str
    total_mb: int
    free_mb: int

    def describe(self) -> str:
        """`GPU 1 (NVIDIA RTX 4090, 23000 of 24564 MB free)`."""
        return f"GPU {self.index} ({self.name}, {self.free_mb} of {self.total_mb} MB free)"
