"""`support-bundle`: one zip archive with everything a maintainer needs to diagnose a problem, and no secret.

It holds the effective configuration (as `check-config` prints it, secrets replaced), or when the
configuration cannot be read, the reason and the file's own text with its secret fields blanked; the
last megabytes of each log; the versions of the worker, Python, torch, CUDA and the key libraries; the
GPUs found; the running worker's status snapshot (through its dashboard, when one answers on this
machine; else the last one a run left in `logs/last-status.json`) and its last faults. Every file
goes through the log redaction on its way in, with the config's secrets and every environment
variable named like a secret (…_KEY, …_TOKEN) registered first: a secret that slipped into a log
line is caught here too.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from horde_worker_regen.commands import bundle_parts
from horde_worker_regen.commands.check_config import render_config
from horde_worker_regen.commands.config_masking import mask_config_text
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.devices.discovery import DeviceInfo, discover_devices, fake_devices
from horde_worker_regen.logs.redaction import redact, register_secrets
from horde_worker_regen.worker.status_file import LAST_STATUS_FILE

DEFAULT_LOG_MB = 5.0
FAULTS_KEPT = 50
EXIT_OK = 0


@dataclass
class Bundle:
    """The archive's files before they are written: name → text (or bytes, for log tails)."""

    files: dict[str, str | bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_json(self, name: str, value: Any) -> None:
        """A file holding `value` as indented JSON."""
        self.files[name] = json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's own options (the bridgeData ones are shared with `run`)."""
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="PATH",
        help="where to write the archive (default: ./horde-worker-support-<date>-<time>.zip)",
    )  # fmt: skip
    parser.add_argument(
        "--log-mb", type=float, default=DEFAULT_LOG_MB, metavar="MB",
        help=f"how much of the end of each log file to include (default: {DEFAULT_LOG_MB:g} MB)",
    )  # fmt: skip


def support_bundle_command(args: argparse.Namespace) -> int:
    """Collect the bundle, write it, and print where it is."""
    bundle_parts.register_environment_secrets(os.environ)
    bundle = collect(args, dict(os.environ))
    output = args.output or Path(f"horde-worker-support-{datetime.datetime.now():%Y%m%d-%H%M%S}.zip")
    write_archive(bundle, output)
    print(f"Support bundle written to {output} ({output.stat().st_size / 1024:.0f} KiB). Secrets are redacted;")
    print("look inside before you share it: it holds your worker's name, its models and its recent jobs.")
    for note in bundle.notes:
        print(f"  note: {note}")
    return EXIT_OK


def collect(args: argparse.Namespace, environ: dict[str, str]) -> Bundle:
    """Every part of the bundle, each one failing alone (a part that cannot be read says why instead)."""
    bundle = Bundle()
    data = _add_config(bundle, args, environ)
    bundle.add_json("versions.json", bundle_parts.versions())
    bundle.add_json("environment.json", bundle_parts.environment_report(environ))
    bundle.add_json("devices.json", _devices(data))
    max_bytes = int(args.log_mb * 1024 * 1024)
    for name, tail in bundle_parts.log_tails(args.logs_dir, max_bytes).items():
        bundle.files[f"logs/{name}"] = tail
    if not any(name.startswith("logs/") for name in bundle.files):
        bundle.notes.append(f"no log files found in {args.logs_dir}")
    _add_status(bundle, data, args.logs_dir, max_bytes)
    bundle.files["README.txt"] = _readme(bundle)
    return bundle


def _add_config(bundle: Bundle, args: argparse.Namespace, environ: dict[str, str]) -> BridgeData | None:
    """The effective configuration, or why it cannot be read and the file's text with secrets blanked."""
    from horde_worker_regen.config.loader import cli_settings, load_config

    # The file's own secrets first: a value the environment overrides, or one in a file that cannot be read
    # as a configuration, is still the owner's, and an older log may hold it.
    masked = (
        mask_config_text(args.config.read_text(encoding="utf-8", errors="replace")) if args.config.is_file() else None
    )
    register_secrets(masked.secrets if masked is not None else [])
    try:
        resolved = load_config(args.config, environ, cli_settings(args.set, args.name))
    except ConfigError as error:  # the most common reason to ask for help: keep the file and the reason
        bundle.files["config-error.txt"] = f"{args.config} could not be used:\n{error}\n"
        if masked is not None:
            bundle.files["bridgeData.yaml"] = masked.text
        bundle.notes.append(f"the configuration could not be read ({args.config}); its reason is in the bundle")
        return None
    register_secrets(resolved.data.secrets())
    bundle.files["config.yaml"] = render_config(resolved) + "\n"
    return resolved.data


def _devices(data: BridgeData | None) -> dict[str, Any]:
    """The GPUs this machine has now, and the fake backend's simulated ones when it is configured."""
    found: dict[str, Any] = {"found": [_device(device) for device in discover_devices()]}
    if data is not None and data.inference_backend == "fake":
        found["fake_backend_simulated"] = [_device(device) for device in fake_devices(data.fake_backend)]
    return found


def _device(device: DeviceInfo) -> dict[str, Any]:
    return {"index": device.index, "name": device.name, "total_mb": device.total_mb, "free_mb": device.free_mb}


def _add_status(bundle: Bundle, data: BridgeData | None, logs_dir: Path, max_bytes: int) -> None:
    """The running worker's snapshot, else the one the last run left on disk; its faults, and those in the
    event logs on disk."""
    status: dict[str, Any] | None = None
    if data is not None and data.dashboard_enabled:
        token = data.dashboard_token.get_secret_value() if data.dashboard_token else None
        live = bundle_parts.live_status(data.dashboard_port, token)
        if isinstance(live, dict):
            status = live
        else:
            bundle.notes.append(live)
    if status is not None:
        bundle.add_json("status.json", status)
    else:
        status = bundle_parts.last_status(logs_dir / LAST_STATUS_FILE)
        if status is not None:
            bundle.add_json("last-status.json", status)
            bundle.notes.append(f"the status is the last one a run left in {logs_dir / LAST_STATUS_FILE}")
    bundle.add_json("faults.json", {
        "worker": [fault for fault in _list((status or {}).get("faults")) if isinstance(fault, dict)],
        "event_logs": bundle_parts.faults_from_events(logs_dir, FAULTS_KEPT, max_bytes),
    })  # fmt: skip


def _list(value: object) -> list[Any]:
    """`value` when a snapshot (written by another version, or damaged) holds a list there, else nothing."""
    return value if isinstance(value, list) else []


def _readme(bundle: Bundle) -> str:
    names = "\n".join(f"  {name}" for name in sorted(bundle.files))
    notes = "\n".join(f"  {note}" for note in bundle.notes) or "  none"
    return (
        "horde-worker-regen support bundle\n"
        f"made {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}\n\n"
        "Secrets (the API key, tokens, environment variables named like secrets) are replaced by <redacted>.\n\n"
        f"Files:\n{names}\n\nNotes:\n{notes}\n"
    )


def write_archive(bundle: Bundle, output: Path) -> None:
    """The zip file, every member redacted (text decoded leniently, so a binary tail cannot slip past)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(bundle.files.items()):
            text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
            archive.writestr(name, redact(text))
    output.write_bytes(buffer.getvalue())
