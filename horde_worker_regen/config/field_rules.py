"""The checks of single bridgeData values that need more than a type and a range.

Each raises ValueError with what is wrong and what to write instead; `BridgeData`'s validators call
them, so the loader reports them like any other bad value (naming the key and where it was set).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

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


def priority_usernames_with_ids(value: list[str]) -> list[str]:
    """Each entry names a horde user as alias#id."""
    bad = [name for name in value if not _PRIORITY_USERNAME.match(name)]
    if bad:
        raise ValueError(f"each entry must look like alias#id (e.g. db0#1); got {bad}")
    return value


def custom_models_named_once(value: list[CustomModel]) -> list[CustomModel]:
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
    return value


def gpu_indices_once_each(value: list[int] | None) -> list[int] | None:
    """Each GPU at most once, and at least one when the list is given."""
    if value is not None and len(set(value)) != len(value):
        raise ValueError(f"each GPU index may appear once; got {value}")
    if value is not None and not value:
        raise ValueError("leave gpu_device_indices out to use every GPU found; an empty list selects none")
    return value


def spool_dir_is_a_folder(value: Path | None) -> Path | None:
    """An existing path must be a folder (results are spooled as files inside it)."""
    if value is not None and value.exists() and not value.is_dir():
        raise ValueError(f"must be a folder, but {value} is a file")
    return value


def horde_url_with_slash(value: str) -> str:
    """An http(s) URL, ending in a slash so that API paths join onto it."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value if value.endswith("/") else value + "/"


def api_key_alone(value: SecretStr) -> SecretStr:
    """The key with nothing around it (a pasted key often brings a space or a newline)."""
    raw = value.get_secret_value()
    if raw != raw.strip() or not raw:
        raise ValueError("must be the key alone, with no spaces around it")
    return value


def empty_when_left_blank(empty: Callable[[], Any]) -> BeforeValidator:
    """`key:` with nothing after it reads as None in YAML: take it as the empty value, as the official worker does."""
    return BeforeValidator(lambda value: empty() if value is None else value)


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


# The checked types BridgeData's fields are declared with.
HordeUrl = Annotated[str, AfterValidator(horde_url_with_slash)]
ApiKey = Annotated[SecretStr, AfterValidator(api_key_alone)]
PriorityUsernames = Annotated[list[str], AfterValidator(priority_usernames_with_ids)]
GpuIndices = Annotated[list[Annotated[int, Field(ge=0, le=63)]] | None, AfterValidator(gpu_indices_once_each)]
CustomModels = Annotated[list[CustomModel], AfterValidator(custom_models_named_once)]
SpoolDir = Annotated[Path | None, AfterValidator(spool_dir_is_a_folder)]
