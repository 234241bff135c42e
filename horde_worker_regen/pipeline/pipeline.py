"""The job pipeline: the parts that move a job from its pop to its last submit, wired together.

Work moves only on events: a job popped, its inputs fetched, a child's message arriving (the pipe is
registered with the event loop), a submit finishing. Each part handles its own:

- `Router` (router.py): intake (validation, input and LoRA fetching) and dispatch to the slots;
- `InferenceStage` (inference.py): a job on a slot's child, the watchdogs, retries, recycling;
- `SafetyStage` (safety_stage.py): the check of every image before it can go out;
- `Reporter` (reporter.py): spool, upload and submit, faults and drops, the end of each job;
- `FormSeats` (form_seats.py): alchemy forms sent to the same children, their answers to the alchemist.

A freed slot gets its next job before anything else is done with the job that just left it, so the
hand-off gap is one message round-trip. This class builds the parts, routes the children's messages
to them and is what the rest of the worker (orchestrator, popper, dashboard) talks to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.devices.placer import DevicePlacer
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.pipeline.fault_guard import FaultGuard
from horde_worker_regen.pipeline.form_seats import FormSeats
from horde_worker_regen.pipeline.inference import InferenceHooks, InferenceStage
from horde_worker_regen.pipeline.reporter import RecentFault, Reporter, ReporterHooks
from horde_worker_regen.pipeline.router import Router
from horde_worker_regen.pipeline.safety_link import SafetyLink
from horde_worker_regen.pipeline.safety_stage import SafetyStage
from horde_worker_regen.pipeline.settings import PipelineContext, PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.slots import SlotPool
from horde_worker_regen.pipeline.submitter import ImageReport
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.messages import (
    ChildFailed,
    ChildMessage,
    FormDone,
    JobDone,
    JobFailed,
    JobProgress,
    JobStage,
    ModelPreloaded,
    SafetyChecked,
)
from horde_worker_regen.scheduling.breaker import Cause, FaultBreaker, Withdrawal
from horde_worker_regen.scheduling.residency import offer_order


@dataclass(frozen=True)
class ChildSpecs:
    """The children the pipeline runs: one safety child and one inference child per slot."""

    safety: ChildSpec
    inference: list[ChildSpec]


_BEFORE_REPORTING = (JobState.POPPED, JobState.INPUTS_FETCHED, JobState.QUEUED, JobState.RUNNING, JobState.SAFETY)


class Pipeline:
    """Moves every job of the registry through inference, safety and reporting."""

    def __init__(
        self,
        settings: PipelineSettings,
        services: PipelineServices,
        children: ChildSpecs,
        on_fatal: Callable[[str], None],
    ) -> None:
        self.registry = services.registry
        self.events = services.events if services.events is not None else EventLog(services.clock)
        self.guard = FaultGuard(FaultBreaker(settings.breaker), self.registry, services.clock)
        # Told of every fault the pipeline recovers from by itself (exit_on_unhandled_faults).
        self.on_unhandled_fault: Callable[[str], None] = lambda reason: None
        self._supervisor = services.supervisor
        context = PipelineContext(self.registry, self.events, self.guard, services.stats, services.clock)
        self._reporter = Reporter(
            context,
            services.submitter,
            services.spool,
            ReporterHooks(self._forget_check, self._withdrawn, self._unhandled_fault),
        )
        link = SafetyLink(services.supervisor, children.safety, self._check_abandoned, on_fatal)
        self._safety = SafetyStage(context, settings.censor, self._reporter, link)
        hooks = InferenceHooks(self.dispatch, self._unhandled_fault, on_fatal)
        self._inference = InferenceStage(
            context, settings.inference, services.supervisor, safety=self._safety, reporter=self._reporter, hooks=hooks
        )
        self._inference.use(children.inference, services.placer)
        self._router = Router(context, self._inference, self._reporter, fetcher=services.fetcher, loras=services.loras)
        # Alchemy forms run on the same children (the alchemist sets `forms.listener`).
        self.forms = FormSeats(services.supervisor, self._inference, link, self.dispatch)
        services.supervisor.bind(self.on_child_message, self.on_child_lost)

    # --- wiring between the parts (each is built after some that call it) -----------------------

    def _forget_check(self, job_key: str) -> None:
        self._safety.link.forget(job_key)

    def _check_abandoned(self, job_key: str, reason: str) -> None:
        self._safety.abandoned(job_key, reason)

    def _withdrawn(self, withdrawal: Withdrawal) -> None:
        self._router.withdrawn(withdrawal)

    def _unhandled_fault(self, reason: str) -> None:
        self.on_unhandled_fault(reason)

    # --- start-up -------------------------------------------------------------------------------

    @property
    def slots(self) -> SlotPool:
        """The inference slots."""
        return self._inference.slots

    async def start_children(self, on_started: Callable[[str], None] | None = None) -> None:
        """The safety child first (nothing may go out unchecked), then every inference slot.

        `on_started(name)` is called as each child comes up (start-up progress)."""
        await self.start_safety()
        if on_started is not None:
            on_started("safety")
        await self.slots.start_all(on_started)

    async def start_safety(self) -> None:
        """Start the safety child alone (the worker finds its GPUs meanwhile, then calls `use_inference`)."""
        await self._safety.link.start()

    def use_inference(self, children: list[ChildSpec], placer: DevicePlacer) -> None:
        """The inference slots and their placement, once the GPUs are known (before they are started)."""
        self._inference.use(children, placer)

    # --- the children's messages ----------------------------------------------------------------

    def on_child_message(self, handle: ChildHandle, message: ChildMessage) -> None:
        """Route a message from any child (called by the supervisor on the event loop)."""
        if isinstance(message, JobDone | JobFailed):
            self._inference.on_result(handle, message)
        elif isinstance(message, JobStage):
            logger.debug(f"Job {message.job_key}: {message.stage} on {handle.name}")
            self.events.emit("stage_started", message.job_key, stage=message.stage, child=handle.name)
            self._inference.on_stage(handle, message)
        elif isinstance(message, JobProgress):
            logger.trace(f"Job {message.job_key}: step {message.step}/{message.total_steps}")
            self._inference.on_progress(handle, message)
        elif isinstance(message, ModelPreloaded):
            self._inference.on_preloaded(handle, message)
        elif isinstance(message, SafetyChecked):
            self._safety.on_checked(message)
            self.forms.capacity_changed()  # an analysis form may go to the safety child now
        elif isinstance(message, FormDone):
            self.forms.on_done(handle, message)
        elif isinstance(message, ChildFailed):
            logger.error(f"{handle.name} reported a failure: {message.reason}")

    def on_child_lost(self, handle: ChildHandle, reason: str) -> None:
        """A child died or went silent: fault what it held and replace it."""
        self.on_unhandled_fault(f"{handle.name} was lost ({reason})")
        if self._safety.link.owns(handle):
            self._safety.link.lost(reason)
        else:
            self._inference.on_lost(handle, reason)
        self.forms.on_lost(handle, reason)

    # --- jobs -----------------------------------------------------------------------------------

    def job_popped(self, job: PoppedJob, popped_at: float) -> JobRecord:
        """Register a job just popped and start preparing it."""
        return self._router.job_popped(job, popped_at)

    def dispatch(self) -> None:
        """Give queued jobs to idle slots (see `Router.dispatch`); alchemy forms may take what is left."""
        self._router.dispatch()
        self.forms.capacity_changed()

    def resume(self, record: JobRecord, reports: list[ImageReport]) -> None:
        """Report a result an earlier run spooled: registered like any job, in its reporting stage."""
        self._reporter.resume(record, reports)

    def fault(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """Report every id of the job as faulted (see `Reporter.fault`)."""
        self._reporter.fault(record, reason, cause)

    def drop(self, record: JobRecord, reason: str, cause: Cause | None = None) -> None:
        """End a job without reporting it (see `Reporter.drop`)."""
        self._reporter.drop(record, reason, cause)

    @property
    def recent_faults(self) -> deque[RecentFault]:
        """The latest jobs faulted or dropped, oldest first (for the dashboard)."""
        return self._reporter.recent_faults

    # --- what the next pop asks for -------------------------------------------------------------

    def offer(self, models: list[str]) -> list[str]:
        """The models to offer the horde: none the fault breaker holds back, those that start soonest first."""
        return offer_order(self.guard.gate(models).models, self.slots.views())

    def servable_post_processors(self) -> frozenset[str] | None:
        """The managed post-processors the inference children can run (each reported them as it came up:
        spandrel knows the level-13 architectures there, rembg is installed for strip_background); None until
        an inference child is ready."""
        return self.slots.servable_post_processors()

    def pop_flags_off(self) -> frozenset[str]:
        """The pop flags (`allow_*`) to turn off: the features the fault breaker refuses now."""
        return self.guard.flags_off()

    def reopens_in(self) -> float | None:
        """Seconds until the fault breaker may offer more by itself (a cool-down ends, a fault ages out)."""
        return self.guard.reopens_in()

    # --- shutdown -------------------------------------------------------------------------------

    async def abort(self, grace: float) -> None:
        """Second signal: stop the children, fault every job not yet reporting, give reports `grace` s."""
        self.slots.stop_all()
        self._safety.link.stop_restarting()
        await self._supervisor.kill_all()
        for record in self.registry:
            if record.state in _BEFORE_REPORTING:
                self.fault(record, "the worker was stopped before it finished")
        await self._reporter.settle(grace)
        for record in self.registry:
            self.drop(record, "the worker stopped before it could be reported")

    def stop_restarting(self) -> None:
        """No more child replacements (graceful shutdown has drained the jobs)."""
        self.slots.stop_restarting()
        self._safety.link.stop_restarting()
