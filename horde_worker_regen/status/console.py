"""The status line logged every `stats_output_frequency` seconds (the alchemist's figures too), the exit lines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.pipeline.alchemy.alchemist import Alchemist
from horde_worker_regen.pipeline.alchemy.stats import AlchemyFigures, AlchemyStats
from horde_worker_regen.pipeline.stats import StatsSnapshot


def format_duration(seconds: float) -> str:
    """`h:mm:ss`."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@dataclass(frozen=True)
class AlchemyLine:
    """What the status line tells of the alchemist."""

    figures: AlchemyFigures
    in_flight: int
    offered: int
    configured: int
    maintenance: bool


def alchemy_line(alchemist: Alchemist) -> AlchemyLine:
    """The alchemist's figures for the status line, read now."""
    offered = sum(1 for form in alchemist.availability() if form.offered)
    maintenance = alchemist.popper.maintenance_message is not None
    return AlchemyLine(alchemist.stats.figures(), len(alchemist.book), offered, len(alchemist.configured), maintenance)


def format_status(
    snapshot: StatsSnapshot,
    slots_busy: int,
    slots: int,
    waiting: int,
    *,
    paused: bool = False,
    stopped: bool = False,
    alchemy: AlchemyLine | None = None,
    images: bool = True,
) -> str:
    """One line: jobs, images, kudos, speed, idle time and slot use (and PAUSED while the owner paused popping,
    NOT POPPING while the fault breaker has withdrawn every model); with the alchemist, its forms and kudos.
    `images` False (an alchemist-only worker): the alchemist's figures and the kudos credited only."""
    parts = [_image_status(snapshot, slots_busy, slots, waiting)] if images else []
    if alchemy is not None:
        parts.append(_alchemy_status(alchemy))
        if not images:
            parts.append(_credited_short(snapshot))
    parts.append(f"up {format_duration(snapshot.uptime)}")
    if paused:
        parts.append("PAUSED (not popping)")
    if stopped and images:
        parts.append("NOT POPPING (every model withdrawn)")
    if alchemy is not None and alchemy.maintenance:
        parts.append("ALCHEMIST IN MAINTENANCE")
    return "Status: " + " | ".join(parts)


def _image_status(snapshot: StatsSnapshot, slots_busy: int, slots: int, waiting: int) -> str:
    problems = ""
    if snapshot.faulted or snapshot.dropped:
        problems = f" ({snapshot.faulted} faulted, {snapshot.dropped} dropped)"
    return (
        f"{snapshot.jobs} jobs{problems}, {snapshot.images} images | "
        f"kudos {snapshot.kudos_session:,.1f} est., {_credited_short(snapshot)}, {snapshot.kudos_per_hour:,.0f}/hr | "
        f"{snapshot.megapixelsteps_per_second:.2f} MPS/s | {snapshot.jobs_per_hour:,.0f} jobs/hr | "
        f"idle {format_duration(snapshot.idle_seconds)} | slots {slots_busy}/{slots} busy, {waiting} waiting"
    )


def _alchemy_status(line: AlchemyLine) -> str:
    figures = line.figures
    problems = [
        f"{count} {word}" for count, word in ((figures.faulted, "faulted"), (figures.dropped, "dropped")) if count
    ]
    return (
        f"alchemy {figures.done} forms" + (f" ({', '.join(problems)})" if problems else "")
        + f", {line.in_flight} in flight, {figures.kudos:,.1f} kudos, {figures.kudos_per_hour:,.0f}/hr, "
        f"{line.offered}/{line.configured} forms offered"
    )  # fmt: skip


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


def format_summary(snapshot: StatsSnapshot, *, images: bool = True) -> str:
    """The line printed when the worker exits: what this run did in total (`images` False: an alchemist-only
    worker, whose forms the alchemy line above gives, and what the horde credited its alchemist)."""
    if not images:
        return (
            f"Summary: alchemy only, {_credited_forms(snapshot.kudos_credited)}, up {format_duration(snapshot.uptime)}"
        )
    return (
        f"Summary: {snapshot.jobs} jobs, {snapshot.images} images, {format_kudos(snapshot)}, "
        f"{snapshot.faulted} faulted, {snapshot.dropped} dropped, up {format_duration(snapshot.uptime)}"
    )


def _credited_forms(credited: Credited | None) -> str:
    if credited is None:
        return "credited by the horde: not read (it could not be asked)"
    return (
        f"{credited.total:,.1f} kudos credited by the horde (forms {credited.jobs:,.1f}, uptime {credited.uptime:,.1f})"
    )


async def report_status_forever(interval: float, line: Callable[[], str]) -> None:
    """Log `line()` every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        logger.info(line())


def format_alchemy_summary(stats: AlchemyStats) -> str:
    """The alchemist's exit line: forms by how they ended and by form, and the kudos the horde answered, by form."""
    figures = stats.figures()

    def by_form(outcome: str) -> str:
        counts = [f"{form} {count[outcome]}" for form, count in figures.by_form.items() if count[outcome]]
        return f" ({', '.join(counts)})" if counts else ""

    kudos = ", ".join(f"{form} {kudos:,.1f}" for form, kudos in sorted(figures.kudos_by_form.items()))
    return (
        f"Alchemy: {figures.done} forms done{by_form('done')}, {figures.faulted} faulted{by_form('faulted')}, "
        f"{figures.dropped} dropped{by_form('dropped')}, {figures.kudos:,.1f} kudos" + (f" ({kudos})" if kudos else "")
    )
