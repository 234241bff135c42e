"""The alchemy form state machine: pop, deliver (compare-and-set), abort, cancel, and the sweep.

Follows `InterrogationForms` (horde/classes/stable/interrogation.py) and `check_interrogations`
(horde/database/threads.py):

- a pop moves a WAITING form to PROCESSING with a deadline 3 minutes out, and keeps its request
  alive 20 more minutes;
- an abort (the deadline passed, or the worker submitted `faulted`) puts the form back to WAITING
  three times and FAULTs it on the fourth; every abort counts toward the alchemist's hourly abort
  limit, the same >20 rule that puts image workers into maintenance;
- a delivery pays the form's value to the alchemist's owner (half in escrow for an untrusted owner,
  no bridge factor) and charges the requester the value plus 1 (plus 2 with `slow_workers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker, FormState, Interrogation, InterrogationForm
from horde_worker_regen.localhorde.alchemy_forms import FORM_TTL_S, INTERROGATION_EXPIRY_S
from horde_worker_regen.localhorde.jobs import log_aborted_job
from horde_worker_regen.localhorde.kudos import credit_split, form_charge
from horde_worker_regen.localhorde.state import HordeState
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET

MAX_FORM_REQUEUES = 3  # aborts that send a form back to WAITING; the next one faults it
NO_BRIDGE_FACTOR = 1.0
R2_MARKER = "R2"
# `deliver_form` outcomes, as the server's `deliver` returns them.
NOT_PROCESSING = 0.0
FAULTED = -1.0


def start_form(
    state: HordeState, form: InterrogationForm, interrogation: Interrogation, worker: AlchemistWorker
) -> None:
    """Hand a WAITING form to an alchemist: PROCESSING, 3 minutes to deliver, request refreshed."""
    now = state.clock.now()
    form.state = FormState.PROCESSING
    form.expiry = now + FORM_TTL_S
    form.initiated = now
    form.worker_id = worker.id
    interrogation.expiry = now + INTERROGATION_EXPIRY_S


def abort_form(state: HordeState, form: InterrogationForm) -> bool:
    """Take a PROCESSING form back (to WAITING, or FAULTED after three re-queues) and count the abort
    against its alchemist; False if the form was not in progress."""
    if form.state is not FormState.PROCESSING:
        return False
    worker = state.workers.get(form.worker_id or "")
    if worker is not None:
        owner = state.users.get(worker.owner_id)
        log_aborted_job(worker, owner, state.clock.now(), suspicion=state.detect_suspicion)
    if form.abort_count >= MAX_FORM_REQUEUES:
        form.state = FormState.FAULTED
        logger.warning(f"local horde: form {form.id} ({form.name}) faulted after {form.abort_count + 1} aborts")
    else:
        form.state = FormState.WAITING
        form.expiry = None
        form.abort_count += 1
    return True


def deliver_form(
    state: HordeState, form: InterrogationForm, result: dict[Any, Any], submitted: str, r2_url: str
) -> float:
    """Store a result with compare-and-set semantics (`InterrogationForms.deliver`).

    Returns the form's value, `NOT_PROCESSING` (0) when it was not in progress (done, aborted back to
    WAITING, faulted or cancelled), or `FAULTED` (-1) for a `faulted` submission, which aborts it.
    Every `"R2"` value of the result is replaced by `r2_url`, the download URL of the uploaded image.
    """
    if form.state is not FormState.PROCESSING:
        return NOT_PROCESSING
    if submitted == "faulted":
        abort_form(state, form)
        return FAULTED
    form.result = {name: r2_url if value == R2_MARKER else value for name, value in result.items()}
    form.state = FormState.DONE
    form.submit_time = state.clock.now()
    _record(state, form)
    return form.kudos


def _record(state: HordeState, form: InterrogationForm) -> None:
    """Credit the alchemist's owner, charge the requester, count the form and its duration."""
    worker = state.workers[form.worker_id or ""]
    interrogation = state.alchemy.interrogations[form.i_id]
    now = state.clock.now()
    worker.performances.append(now - (form.initiated or now))
    worker.fulfilments += 1
    worker.kudos_generated += form.kudos
    if isinstance(worker, AlchemistWorker):
        worker.forms_done[form.name] = worker.forms_done.get(form.name, 0) + 1
    owner = state.users.get(worker.owner_id)
    if owner is not None:
        credit = credit_split(form.kudos, NO_BRIDGE_FACTOR, trusted=owner.trusted)
        owner.kudos += credit.spendable
        owner.evaluating_kudos += credit.escrow
        owner.forms_fulfilled += 1
    charge = form_charge(form.kudos, slow_workers=interrogation.slow_workers)
    requester = state.users.get(interrogation.user_id)
    if requester is not None:
        requester.kudos -= charge
        requester.forms_requested += 1
    interrogation.consumed_kudos += charge
    interrogation.expiry = now + INTERROGATION_EXPIRY_S
    logger.info(f"local horde: form {form.id} ({form.name}) by '{worker.name}' rewarded {form.kudos}")


def cancel_interrogation(state: HordeState, interrogation: Interrogation) -> None:
    """`Interrogation.cancel`: every form not yet DONE becomes CANCELLED and loses its result.

    A form an alchemist is working on is cancelled too and its alchemist is paid nothing: the
    server's `cancel` means to credit it but tests the state after changing it.
    """
    for form in state.alchemy.forms_of(interrogation):
        if form.state is not FormState.DONE:
            form.result = None
            form.state = FormState.CANCELLED


@dataclass
class AlchemySweep:
    """What one alchemy sweep did."""

    aborted_forms: list[str] = field(default_factory=list)
    expired_interrogations: list[str] = field(default_factory=list)


def sweep_alchemy(state: HordeState) -> AlchemySweep:
    """`check_interrogations`: delete expired requests (and their stored source), then abort every
    form past its deadline."""
    now = state.clock.now()
    report = AlchemySweep()
    for interrogation in [i for i in state.alchemy.interrogations.values() if i.expiry < now]:
        if interrogation.source.key is not None:
            state.objects.delete(SOURCES_BUCKET, interrogation.source.key)
        state.alchemy.delete(interrogation)
        report.expired_interrogations.append(interrogation.id)
    for form in list(state.alchemy.forms.values()):
        if form.is_stale(now) and abort_form(state, form):
            report.aborted_forms.append(form.id)
    if report.aborted_forms or report.expired_interrogations:
        logger.info(
            f"local horde alchemy sweep: {len(report.aborted_forms)} forms aborted, "
            f"{len(report.expired_interrogations)} requests expired"
        )
    return report
