"""`/metrics`: the dashboard snapshot in the Prometheus text format, through prometheus_client.

A custom collector turns each scrape's snapshot into metric families, so the figures are the
worker's own at scrape time and nothing is double-booked in a second set of counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from horde_worker_regen.dashboard.snapshot import Snapshot
from horde_worker_regen.dashboard.telemetry_metrics import identity_families, telemetry_families

PREFIX = "horde_worker"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = {
    "jobs": "Jobs submitted since the worker started.",
    "images": "Images submitted since the worker started.",
    "faulted": "Jobs reported as faulted since the worker started.",
    "dropped": "Jobs dropped unreported since the worker started.",
    "kudos_session": "Kudos earned since the worker started (estimate: submit rewards x the bridge factor).",
    "megapixelsteps": "Megapixel-steps generated since the worker started.",
}
_OUTCOMES = ("done", "faulted", "dropped")
_GAUGES = {
    "kudos_per_hour": "Kudos per hour over the last hour.",
    "megapixelsteps_per_second": "Megapixel-steps per second since the worker started (MPS/s).",
    "jobs_per_hour": "Jobs per hour since the worker started.",
    "idle_s": "Seconds with no job at all in the worker.",
}


class SnapshotCollector(Collector):
    """Reads one snapshot per scrape and yields it as metric families."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Every metric of one scrape."""
        snap = self._snapshot()
        totals = snap["totals"]
        for name, text in _COUNTERS.items():
            # prometheus_client appends `_total` to counter names itself.
            yield CounterMetricFamily(f"{PREFIX}_{name.removesuffix('_session')}", text, value=totals[name])
        for name, text in _GAUGES.items():
            yield GaugeMetricFamily(f"{PREFIX}_{name}", text, value=totals[name])
        worker = snap["worker"]
        yield GaugeMetricFamily(
            f"{PREFIX}_uptime_seconds", "Seconds since the worker started.", value=worker["uptime_s"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_paused", "1 while the owner has paused popping.", value=1.0 if worker["paused"] else 0.0
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_maintenance",
            "1 while the horde holds the worker in maintenance.",
            value=1.0 if worker["maintenance_message"] else 0.0,
        )
        credited = totals["kudos_credited"]
        if credited is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_kudos_credited",
                "Kudos the horde credited this worker since it started (read a few times an hour).",
                value=credited["total"],
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_kudos_bridge_factor",
            "The horde's kudos multiplier for this bridge version (applied to the kudos estimate).",
            value=totals["kudos_factor"],
        )
        if snap["bridge"]["level"] is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_bridge_level",
                "The reGen capability level the bridge agent claims (the horde pays 1.0x only for the latest).",
                value=snap["bridge"]["level"],
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_queued_jobs", "Jobs popped and waiting for a slot.", value=len(snap["queue"])
        )
        yield from _slot_families(snap)
        if snap["alchemy"] is not None:
            yield from _alchemy_families(snap["alchemy"])
        yield from identity_families(snap["identity"])
        if snap["telemetry"] is not None:
            yield from telemetry_families(snap["telemetry"])


def _slot_families(snap: Snapshot) -> Iterator[Metric]:
    busy = GaugeMetricFamily(f"{PREFIX}_slot_busy", "1 while the slot runs a job.", labels=["slot"])
    duty = GaugeMetricFamily(f"{PREFIX}_slot_duty_ratio", "Busy time / uptime of the slot.", labels=["slot"])
    step = GaugeMetricFamily(f"{PREFIX}_slot_step", "Latest sampling step of the slot's job.", labels=["slot"])
    for slot in snap["slots"]:
        label = [str(slot["index"])]
        busy.add_metric(label, 1.0 if slot["state"] == "busy" else 0.0)
        duty.add_metric(label, slot["duty"])
        step.add_metric(label, slot["step"])
    yield from (busy, duty, step)


def _alchemy_families(alchemy: Snapshot) -> Iterator[Metric]:
    """The alchemist's figures: forms by form and outcome, kudos by form, what it holds and offers now."""
    forms = CounterMetricFamily(
        f"{PREFIX}_alchemy_forms", "Alchemy forms ended since the worker started, by form and outcome "
        "(done: submitted ok; faulted: reported faulted; dropped: ended unreported).", labels=["form", "outcome"],
    )  # fmt: skip
    kudos = CounterMetricFamily(
        f"{PREFIX}_alchemy_kudos", "Kudos the horde answered for alchemy forms (no bridge factor), by form.",
        labels=["form"],
    )  # fmt: skip
    offered = GaugeMetricFamily(
        f"{PREFIX}_alchemy_form_offered", "1 while the configured form is asked for in the alchemy pops.",
        labels=["form"],
    )  # fmt: skip
    for row in alchemy["forms"]:
        for outcome in _OUTCOMES:
            forms.add_metric([row["form"], outcome], row[outcome])
        kudos.add_metric([row["form"]], row["kudos"])
        offered.add_metric([row["form"]], 1.0 if row["offered"] else 0.0)
    in_flight = GaugeMetricFamily(
        f"{PREFIX}_alchemy_forms_in_flight", "Alchemy forms popped and not ended yet, by lane.", labels=["lane"]
    )
    for lane, count in alchemy["in_flight_by_lane"].items():
        in_flight.add_metric([lane], count)
    yield from (forms, kudos, offered, in_flight)
    yield GaugeMetricFamily(
        f"{PREFIX}_alchemy_forms_offered", "Configured alchemy forms asked for now.", value=len(alchemy["offered"])
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_alchemy_kudos_per_hour", "Alchemy kudos per hour over the last hour.",
        value=alchemy["totals"]["kudos_per_hour"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        f"{PREFIX}_alchemy_maintenance", "1 while the horde holds the alchemist in maintenance.",
        value=1.0 if alchemy["state"] == "maintenance" else 0.0,
    )  # fmt: skip


def metrics_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own (not the global one), holding only the worker's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of one scrape."""
    return generate_latest(registry)
