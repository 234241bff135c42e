"""The checks of single bridgeData values that need more than a type and a range.

Each raises ValueError with what is wrong and what to write instead; `BridgeData`'s validators call
them, so the loader reports them like any other bad value (naming the key and where it was set).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from horde_worker_regen.config.sections import CustomModel, GpuDeviceSettings

MIN_DASHBOARD_TOKEN_LENGTH = 16
_PRIORITY_USERNAME = re.compile(r"^.+#\d+$")


def is_loopback_host(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_priority_usernames(value: list[str]) -> None:
    """Each entry names a horde user as alias#id."""
    bad = [name for name in value if not _PRIORITY_USERNAME.match(name)]
    if bad:
        raise ValueError(f"each entry must look like alias#id (e.g. db0#1); got {bad}")


def check_custom_model_names(value: list[CustomModel]) -> None:
    """The backend keeps one file per name and models are matched case-insensitively: a second entry of
    the same name would be silently dropped or make the name ambiguous."""
    seen: set[str] = set()
    repeated = []
    for model in value:
        folded = model.name.casefold()
        if folded in seen:
            repeated.append(model.name)
        seen.add(folded)
    if repeated:
        raise ValueError(f"each custom model needs a name of its own; repeated: {repeated}")


def check_gpu_indices(value: list[int] | None) -> None:
    """Each GPU at most once, and at least one when the list is given."""
    if value is not None and len(set(value)) != len(value):
        raise ValueError(f"each GPU index may appear once; got {value}")
    if value is not None and not value:
        raise ValueError("leave gpu_device_indices out to use every GPU found; an empty list selects none")


def check_gpu_overrides(overrides: Mapping[int, GpuDeviceSettings], indices: list[int] | None, max_power: int) -> None:
    """An override must name a selected GPU and may only lower max_power (the horde sees one max_pixels)."""
    for index, override in overrides.items():
        if indices is not None and index not in indices:
            raise ValueError(f"gpu_device_overrides: GPU {index} is not in gpu_device_indices {indices}")
        if override.max_power is not None and override.max_power > max_power:
            raise ValueError(
                f"gpu_device_overrides: GPU {index} max_power {override.max_power} is above the "
                f"worker's max_power {max_power}; raise max_power or lower the override"
            )


def check_dashboard_token(token: str | None, host: str | None, enabled: bool) -> None:
    """An open dashboard would let anyone on the network pause the worker: it needs a token."""
    raw = token or ""
    if token is not None and (len(raw) < MIN_DASHBOARD_TOKEN_LENGTH or raw != raw.strip()):
        raise ValueError(f"must be at least {MIN_DASHBOARD_TOKEN_LENGTH} characters, with no spaces around it")
    if not raw and enabled and host and not is_loopback_host(host):
        raise ValueError(
            f"a token is required because dashboard_host is {host!r}, which is not loopback "
            "(set dashboard_token, or dashboard_host: 127.0.0.1)"
        )
