"""The compact status line logged every `stats_output_frequency` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger

from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.pipeline.alchemy.stats import AlchemyStats
from horde_worker_regen.pipeline.stats import StatsSnapshot


def format_duration(seconds: float) -> str:
    """`h:mm:ss`."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_status(
    snapshot: StatsSnapshot, slots_busy: int, slots: int, waiting: int, *, paused: bool = False, stopped: bool = False
) -> str:
    """One line: jobs, images, kudos, speed, idle time and slot use (and PAUSED while the owner paused popping,
    NOT POPPING while the fault breaker has withdrawn every model)."""
    problems = ""
    if snapshot.faulted or snapshot.dropped:
        problems = f" ({snapshot.faulted} faulted, {snapshot.dropped} dropped)"
    return (
        f"Status: {snapshot.jobs} jobs{problems}, {snapshot.images} images | "
        f"kudos {snapshot.kudos_session:,.1f} est., {_credited_short(snapshot)}, {snapshot.kudos_per_hour:,.0f}/hr | "
        f"{snapshot.megapixelsteps_per_second:.2f} MPS/s | {snapshot.jobs_per_hour:,.0f} jobs/hr | "
        f"idle {format_duration(snapshot.idle_seconds)} | slots {slots_busy}/{slots} busy, {waiting} waiting | "
        f"up {format_duration(snapshot.uptime)}"
        + (" | PAUSED (not popping)" if paused else "")
        + (" | NOT POPPING (every model withdrawn)" if stopped else "")
    )


def _credited_short(snapshot: StatsSnapshot) -> str:
    credited = snapshot.kudos_credited
    return "credited not read yet" if credited is None else f"{credited.total:,.1f} credited"


def format_kudos(snapshot: StatsSnapshot) -> str:
    """The worker's estimate beside what the horde credited, labelled so that the owner can reconcile them."""
    return kudos_text(snapshot.kudos_session, snapshot.kudos_factor, snapshot.kudos_credited, snapshot.bridge_level)


def kudos_text(estimated: float, factor: float, credited: Credited | None, level: int | None = None) -> str:
    """`format_kudos` from the bare figures (the demo prints the same words from the worker's metrics file).

    `factor` is the bridge factor of the capability `level` claimed at the end (when known)."""
    claimed = f", bridge level {level}" if level is not None else ""
    estimate = f"{estimated:,.1f} kudos estimated (submit rewards x{factor:.2f} bridge factor{claimed})"
    if credited is None:
        return f"{estimate}, credited by the horde: not read (it could not be asked)"
    return (
        f"{estimate}, {credited.total:,.1f} credited by the horde (jobs {credited.jobs:,.1f}, "
        f"uptime {credited.uptime:,.1f})"
    )


def format_summary(snapshot: StatsSnapshot) -> str:
    """The line printed when the worker exits: what this run did in total."""
    return (
        f"Summary: {snapshot.jobs} jobs, {snapshot.images} images, {format_kudos(snapshot)}, "
        f"{snapshot.faulted} faulted, {snapshot.dropped} dropped, up {format_duration(snapshot.uptime)}"
    )


async def report_status_forever(interval: float, line: Callable[[], str]) -> None:
    """Log `line()` every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        logger.info(line())


def format_alchemy_summary(stats: AlchemyStats) -> str:
    """The alchemist's exit line: forms by how they ended, and the kudos the horde answered, by form."""
    by_form = ", ".join(f"{form} {kudos:.1f}" for form, kudos in sorted(stats.kudos.items()))
    snapshot = stats.snapshot()
    return (
        f"Alchemy: {snapshot['done']} forms done, {snapshot['faulted']} faulted, {snapshot['dropped']} dropped, "
        f"{snapshot['kudos']} kudos" + (f" ({by_form})" if by_form else "")
    )
