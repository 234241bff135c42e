"""Where alchemy forms run: the safety child (analysis forms) and idle inference slots (post-processors).

The pipeline owns the children; the alchemist (`pipeline/alchemy/`) asks here to send a form to one,
and hears back through its `FormListener`: each `FormDone`, each lost child, and each moment capacity
may have freed (a slot after the image jobs had their turn, a safety check answered). A slot running
a form is BUSY like one running a job and keeps the model it holds; its answer frees it, and the
image jobs waiting get it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from loguru import logger

from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.pipeline.inference import InferenceStage
from horde_worker_regen.pipeline.safety_link import SafetyLink
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.handle import ChildHandle
from horde_worker_regen.processes.messages import FormDone, RunForm


class FormListener(Protocol):
    """What the alchemist hears from the children."""

    def form_done(self, child: str, outcome: FormOutcome) -> None:
        """A child answered a form (`child`: its name with its incarnation)."""
        ...

    def child_lost(self, child: str, reason: str) -> None:
        """A child died, went silent or was killed: the forms it held are lost."""
        ...

    def capacity_changed(self) -> None:
        """A slot or the safety child may be free for a form (image jobs have had their turn)."""
        ...


class FormSeats:
    """Sends forms to the pipeline's children and routes their answers to the alchemist."""

    def __init__(
        self, supervisor: ChildClient, inference: InferenceStage, link: SafetyLink, dispatch: Callable[[], None]
    ) -> None:
        self._supervisor = supervisor
        self._inference = inference
        self._link = link
        self._dispatch = dispatch  # image jobs first, whenever a slot frees
        self.listener: FormListener | None = None

    # --- what the alchemist sees and does -------------------------------------------------------

    @property
    def image_checks_pending(self) -> int:
        """Image checks the safety child has not answered yet (they go before any analysis form)."""
        return self._link.pending_checks

    @property
    def idle_slots(self) -> int:
        """Inference slots ready for work."""
        return len(self._inference.slots.idle_indexes())

    def run_analysis(self, request: FormRequest) -> str | None:
        """Send an analysis form to the safety child; its name, or None when none is up."""
        handle = self._link.handle
        if handle is None or not self._supervisor.send(handle, RunForm(handle.incarnation, request)):
            return None
        return handle.name

    def run_on_idle_slot(self, request: FormRequest) -> str | None:
        """Send a post-processor form to an idle inference slot's child; its name, or None when none is idle."""
        for index in self._inference.slots.idle_indexes():
            slot = self._inference.slots.slots[index]
            handle = slot.handle
            if handle is not None and self._supervisor.send(handle, RunForm(handle.incarnation, request)):
                slot.take_form(request.form_id)
                return handle.name
        return None

    def kill_slot_of(self, form_id: str, reason: str) -> bool:
        """Kill (and replace) the inference child stuck on a form; False if no slot holds it."""
        slot = next((slot for slot in self._inference.slots.slots if slot.job_key == form_id), None)
        if slot is None:
            return False
        self._inference.kill_child(slot, reason)
        return True

    # --- what the pipeline routes here --------------------------------------------------------------

    def on_done(self, handle: ChildHandle, message: FormDone) -> None:
        """A child's answer: its slot (if one held the form) frees, images first; then the alchemist hears it."""
        slot = self._inference.slots.slot_of(handle)
        if slot is not None and slot.job_key == message.outcome.form_id:
            slot.release()
            self._dispatch()
        if self.listener is None:
            logger.debug(f"Form {message.outcome.form_id} answered by {handle.name} with no alchemist running")
            return
        self.listener.form_done(handle.name, message.outcome)

    def on_lost(self, handle: ChildHandle, reason: str) -> None:
        """A child is gone: the forms it held are lost."""
        if self.listener is not None:
            self.listener.child_lost(handle.name, reason)

    def capacity_changed(self) -> None:
        """Tell the alchemist a seat may be free."""
        if self.listener is not None:
            self.listener.capacity_changed()
