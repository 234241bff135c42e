"""The alchemist's part of the dashboard snapshot: its state, every form offered or why not, what it holds.

Read from the live alchemist like the rest of the snapshot. A form's source image URL and its
`r2_upload` are presigned URLs (credentials for an hour) or the requester's own: neither is read
here, and every fault reason shown has its URLs cut to their host.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from horde_worker_regen.horde.reasons import without_urls
from horde_worker_regen.jobs.form_record import FormRecord
from horde_worker_regen.pipeline.alchemy.alchemist import Alchemist
from horde_worker_regen.pipeline.alchemy.stats import AlchemyFigures, FormProblem
from horde_worker_regen.scheduling.alchemy import FormAvailability

_NO_COUNTS = {"done": 0, "faulted": 0, "dropped": 0}


def alchemy_snapshot(alchemist: Alchemist, now: float) -> dict[str, Any]:
    """Everything the dashboard shows of the alchemist, as JSON-ready data (`now`: the monotonic clock)."""
    figures = alchemist.stats.figures()
    availability = alchemist.availability()
    maintenance = alchemist.popper.maintenance_message
    held = list(alchemist.book)
    return {
        "name": alchemist.name,
        "state": "maintenance" if maintenance is not None else ("paused" if alchemist.paused() else "serving"),
        "maintenance_message": maintenance,  # the horde's own words
        "configured": list(alchemist.configured),
        "offered": [form.form for form in availability if form.offered],
        "forms": _forms(alchemist, availability, figures),
        "in_flight": [_held(record, now) for record in held],
        "in_flight_by_lane": {
            "analysis": sum(1 for record in held if record.lane == "analysis"),
            "post_processing": sum(1 for record in held if record.lane == "post_processing"),
        },
        "totals": {
            "done": figures.done,
            "faulted": figures.faulted,
            "dropped": figures.dropped,
            "in_flight": len(held),
            "kudos": figures.kudos,
            "kudos_per_hour": figures.kudos_per_hour,
        },
        "last_problem": _problem(figures.last_problem),
    }


def _held(record: FormRecord, now: float) -> dict[str, Any]:
    """A form in flight: its id, name, state and lane, and how long since its pop (never its URLs)."""
    age = max(0.0, now - record.popped_at)
    return {"form_id": record.form_id, "form": record.form, "state": record.state.value, "lane": record.lane,
            "age_s": age}  # fmt: skip


def _forms(
    alchemist: Alchemist, availability: tuple[FormAvailability, ...], figures: AlchemyFigures
) -> list[dict[str, Any]]:
    """One row per configured form (offered or why not), then any other form seen this run, with its counts."""
    held = Counter(record.form for record in alchemist.book)
    rows = [(form.form, form.offered, form.reason) for form in availability]
    configured = {form for form, _, _ in rows}
    rows += [(form, False, "not configured") for form in sorted(figures.by_form) if form not in configured]
    return [
        {"form": form, "offered": offered, "reason": None if reason is None else without_urls(reason),
         "in_flight": held[form], **figures.by_form.get(form, _NO_COUNTS),
         "kudos": figures.kudos_by_form.get(form, 0.0)}
        for form, offered, reason in rows
    ]  # fmt: skip


def _problem(problem: FormProblem | None) -> dict[str, Any] | None:
    if problem is None:
        return None
    return {"at": problem.at, "form_id": problem.form_id, "form": problem.form, "state": problem.state,
            "reason": without_urls(problem.reason)}  # fmt: skip
