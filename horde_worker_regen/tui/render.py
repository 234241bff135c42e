"""What each part of the terminal UI says, from one snapshot: plain functions returning Rich text.

Every key is read tolerantly: a worker of another version, or a part not reported yet (identity,
telemetry, recent jobs), leaves its line out or says what is missing instead of failing. The answer is
untrusted: a part of another shape reads as absent, and a value that is not a finite number where a number
belongs shows as "?".
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from rich.text import Text

from horde_worker_regen.shared.numbers import finite
from horde_worker_regen.tui.source import Snapshot

BAR_WIDTH = 10
_STATE_STYLES = {"serving": "bold green", "paused": "bold yellow", "stopping": "bold yellow"}
_SLOT_STYLES = {"busy": "green", "idle": "dim", "out_of_service": "bold red", "replacing": "yellow"}


def lookup(mapping: Any, *keys: str) -> Any:
    """`mapping[k1][k2]...`, or None where any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping; an empty one for anything else (a part of another shape reads as absent)."""
    return value if isinstance(value, dict) else {}


def _mappings(value: Any) -> list[dict[str, Any]]:
    """The mappings in `value` when it is a list; anything else in it is left out."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _number(value: Any, missing: float = 0.0) -> float | None:
    """`value` as a float: `missing` when it is absent (None), None when it is not a finite number."""
    return missing if value is None else finite(value)


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _figure(value: Any, spec: str) -> str:
    """`value` formatted by `spec` (0 when absent); "?" when it is not a finite number."""
    number = _number(value)
    return "?" if number is None else format(number, spec)


def _or_unknown(number: int | None) -> str:
    return "?" if number is None else str(number)


def _short_agent(agent: Any) -> str | None:
    """The bridge agent without its project URL: name and capability level."""
    if not agent or not isinstance(agent, str):
        return None
    name, _, rest = agent.partition(":")
    level = rest.split(":", 1)[0]
    return f"{name}:{level}" if level else name


def _host(url: Any) -> str:
    if not url or not isinstance(url, str):
        return "?"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: shown as it came
        return url
    return (parts.netloc + parts.path).rstrip("/") or url


def identity_text(snapshot: Snapshot) -> Text:
    """Who this worker is and where it works: name (and id), backend, models offered, horde and its version,
    bridge agent."""
    identity = _mapping(snapshot.get("identity"))
    name = identity.get("worker_name") or lookup(snapshot, "worker", "name") or "?"
    text = Text.assemble((str(name), "bold"))
    if identity.get("worker_id"):
        text.append(f" ({identity['worker_id']})", "dim")
    backend = lookup(identity, "backend", "label")
    if backend:
        style = "bold magenta" if lookup(identity, "backend", "kind") == "fake" else "cyan"
        text.append("  ").append(str(backend), style)
    offered = identity.get("models_offered")
    if isinstance(offered, list):
        text.append(f"  {len(offered)} model{'' if len(offered) == 1 else 's'} offered", "dim")
    horde = identity.get("horde_url") or lookup(snapshot, "worker", "horde_url")
    text.append("\nhorde ").append(_host(horde), "cyan")
    if identity.get("horde_version"):
        text.append(f" v{identity['horde_version']}")
    agent = _short_agent(identity.get("bridge_agent") or lookup(snapshot, "bridge", "agent"))
    if agent:
        text.append("  ").append(agent, "dim")
    return text


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def state_text(snapshot: Snapshot) -> Text:
    """The horde state (serving, paused, maintenance, unreachable, stopping), uptime and the run's totals."""
    worker = _mapping(snapshot.get("worker"))
    state = "stopping" if worker.get("stopping") else str(worker.get("state") or "?")
    text = Text.assemble((state, _STATE_STYLES.get(state, "bold red")))
    if worker.get("maintenance_message"):
        text.append(f" ({worker['maintenance_message']})", "yellow")
    totals = _mapping(snapshot.get("totals"))
    uptime = _number(worker.get("uptime_s"))
    text.append(f"  up {'?' if uptime is None else _duration(uptime)}")
    text.append(f"  jobs {_or_unknown(_whole(totals.get('jobs')))}")
    text.append(f"  images {_or_unknown(_whole(totals.get('images')))}")
    faulted, dropped = _whole(totals.get("faulted")), _whole(totals.get("dropped"))
    faults = None if faulted is None or dropped is None else faulted + dropped
    text.append(f"  faults {_or_unknown(faults)}", "red" if faults != 0 else "")
    text.append(f"  kudos {_figure(totals.get('kudos_session'), ',.1f')}")
    return text


def _bar(step: int | None, total: int | None) -> str:
    done = 0
    if step is not None and total is not None and total > 0:
        done = round(BAR_WIDTH * min(max(step, 0), total) / total)  # within the bar whatever the step says
    return "█" * done + "░" * (BAR_WIDTH - done)


def _device_label(slot: dict[str, Any]) -> str:
    device = slot.get("device")
    if not isinstance(device, dict):
        return "—"
    if device.get("kind") == "gpu":
        return f"GPU{device.get('index', '?')}"
    return str(device.get("label") or "CPU")


def slots_text(snapshot: Snapshot) -> Text:
    """One line per inference slot: device, state, job, step progress, model."""
    slots = _mappings(snapshot.get("slots"))
    if not slots:
        return Text("no inference slot yet", "dim")
    text = Text()
    for slot in slots:
        if text:
            text.append("\n")
        state = str(slot.get("state", "?"))
        text.append(f"#{slot.get('index', '?')} {_device_label(slot):<5} ")
        text.append(f"{state:<9}", _SLOT_STYLES.get(state, ""))
        job = _mapping(slot.get("job"))
        step, total = _whole(slot.get("step")), _whole(slot.get("total_steps"))
        if job:
            text.append(f" {str(job.get('job', '?'))[:8]:<8} ")
            text.append(_bar(step, total), "green")
            text.append(f" {_or_unknown(step):>3}/{_or_unknown(total):<3}" if total != 0 else " " * 8)
        else:
            text.append(" " * 28)
        text.append(f" {slot.get('model') or '—'}", "cyan")
    return text


def queue_text(snapshot: Snapshot) -> Text:
    """The jobs waiting for a slot, and those past inference (safety check, upload)."""
    queue = _mappings(snapshot.get("queue"))
    finishing = snapshot.get("finishing")
    finishing = finishing if isinstance(finishing, list) else []
    text = Text.assemble(("queue ", "bold"), str(len(queue)))
    if queue:
        shown = ", ".join(
            f"{job.get('model', '?')} {job.get('width', '?')}×{job.get('height', '?')}" for job in queue[:3]
        )
        text.append(f": {shown}" + (f" +{len(queue) - 3}" if len(queue) > 3 else ""))
    text.append(f"   finishing {len(finishing)}", "dim")
    return text


def rate_text(label: str, value: Any, unit_format: str = "{:,.1f}") -> Text:
    """A figure beside its sparkline: "—" before there is one, "?" when it is not a finite number."""
    number = finite(value)
    shown = "—" if value is None else "?" if number is None else unit_format.format(number)
    return Text.assemble((f"{label} ", "bold"), (shown, "green"))


def _gb(mb: Any) -> str:
    number = _number(mb)
    return "?" if number is None else f"{number / 1024:.1f}"


def _gpu_text(gpu: dict[str, Any]) -> Text:
    """One GPU's line; one this worker does not use (its energy is not counted) dimmed and labelled so."""
    text = Text()
    text.append(f"GPU{gpu.get('index', '?')} ", "bold")
    text.append(f"VRAM {_gb(gpu.get('vram_used_mb'))}/{_gb(gpu.get('vram_total_mb'))} GB")
    text.append(f"  util {_figure(gpu.get('utilisation_pct'), '.0f')}%")
    text.append(f"  {_figure(gpu.get('temperature_c'), '.0f')}°C")
    if gpu.get("power_w") is not None:
        limit = gpu.get("power_limit_w")
        text.append(f"  {_figure(gpu['power_w'], '.0f')}" + (f"/{_figure(limit, '.0f')}" if limit else "") + " W")
    text.append(f"  {gpu.get('name', '')}", "dim")
    if gpu.get("used") is False:  # absent (an older worker's snapshot): shown as before
        text.append("  not used", "italic")
        text.stylize("dim")
    return text


def telemetry_text(snapshot: Snapshot) -> Text:
    """Each GPU's VRAM, utilisation, temperature and power, and kudos per kWh; or why there is none, with CPU/RAM."""
    telemetry = snapshot.get("telemetry")
    if not isinstance(telemetry, dict):
        return Text("no GPU telemetry reported by this worker", "dim")
    text = Text()
    gpus = _mappings(telemetry.get("gpus")) if telemetry.get("available") else []
    for gpu in gpus:
        if text:
            text.append("\n")
        text.append(_gpu_text(gpu))
    if not gpus:
        text.append(str(telemetry.get("note") or "no GPU telemetry"), "yellow")
        host = _mapping(telemetry.get("host"))
        text.append(f"  CPU {_figure(host.get('cpu_pct'), '.0f')}%")
        text.append(f"  RAM {_gb(host.get('ram_used_mb'))}/{_gb(host.get('ram_total_mb'))} GB")
    per_kwh = telemetry.get("kudos_per_kwh")
    if per_kwh is not None:
        text.append(f"\nkudos/kWh {_figure(per_kwh, ',.0f')}", "bold")
        text.append(f"  ({_figure(telemetry.get('energy_kwh'), '.3f')} kWh so far)", "dim")
    return text


def _clock(at: Any) -> str:
    seconds = finite(at)
    if seconds is None:
        return "--:--:--"
    try:
        return time.strftime("%H:%M:%S", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):  # a time out of the platform's range (year 3e12, before 1970 ...)
        return "--:--:--"


def messages_text(snapshot: Snapshot) -> Text | None:
    """The horde's messages to this worker, newest last (None when there are none)."""
    messages = _mappings(lookup(snapshot, "worker", "horde_messages"))
    if not messages:
        return None
    return Text("\n".join(f"✉ {message.get('message', '')}" for message in messages), "yellow")


def recent_text(snapshot: Snapshot, lines: int) -> Text:
    """The last jobs that ended, newest first, each fault with its reason; the faults alone from an
    older worker that reports no recent jobs."""
    recent = snapshot.get("recent_jobs")
    entries = [_job_line(job) for job in _mappings(recent)] if isinstance(recent, list) else []
    if not isinstance(recent, list):
        entries = [_fault_line(fault) for fault in _mappings(snapshot.get("faults"))]
    if not entries:
        return Text("no job has ended yet", "dim")
    return Text("\n").join(entries[: max(1, lines)])


def _job_line(job: dict[str, Any]) -> Text:
    state = str(job.get("state", "?"))
    line = Text(f"{_clock(job.get('at'))} ")
    if state == "submitted":
        line.append("✓ ", "green").append(f"{str(job.get('job', '?'))[:8]} {job.get('model', '?')}")
        line.append(f" {job.get('images', '?')} img {_figure(job.get('kudos'), '.1f')} kudos")
        if job.get("seconds") is not None:
            line.append(f" {_figure(job['seconds'], '.1f')}s", "dim")
        return line
    line.append(f"✗ {state} ", "bold red").append(f"{str(job.get('job', '?'))[:8]}: ")
    return line.append(str(job.get("reason") or "no reason recorded"), "red")


def _fault_line(fault: dict[str, Any]) -> Text:
    line = Text(f"{_clock(fault.get('at'))} ")
    line.append(f"✗ {fault.get('outcome', 'faulted')} ", "bold red").append(f"{str(fault.get('job', '?'))[:8]}: ")
    return line.append(str(fault.get("reason") or ""), "red")
