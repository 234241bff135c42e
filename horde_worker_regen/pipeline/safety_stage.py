"""The safety stage: every generated image is checked before it can go out, then reported.

A job whose inference succeeded moves to SAFETY and its check goes to the safety child (through the
`SafetyLink`, which resends it to a replacement if the child is lost). Its verdicts move it on to
reporting; a check that cannot be answered faults the job, since images must not go out unchecked.
"""

from __future__ import annotations

from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.spec import ImagesToCheck
from horde_worker_regen.pipeline.reporter import Reporter
from horde_worker_regen.pipeline.safety_link import SafetyLink
from horde_worker_regen.pipeline.settings import CensorSettings, PipelineContext
from horde_worker_regen.processes.messages import CheckImages, SafetyChecked
from horde_worker_regen.safety.policy import censor_policy
from horde_worker_regen.scheduling.retries import transient_cause


class SafetyStage:
    """Sends each job's images to the safety child and takes its verdicts."""

    def __init__(self, context: PipelineContext, censor: CensorSettings, reporter: Reporter, link: SafetyLink) -> None:
        self._context = context
        self._censor = censor
        self._reporter = reporter
        self.link = link  # its `on_check_abandoned` is this stage's `abandoned`

    def check(self, record: JobRecord) -> None:
        """The job's images are generated: check them."""
        self._context.registry.move(record, JobState.SAFETY)
        self.link.check(self._request(record))

    def _request(self, record: JobRecord) -> CheckImages:
        spec = record.spec
        policy = censor_policy(
            worker_nsfw=self._censor.worker_nsfw,
            use_nsfw_censor=record.use_nsfw_censor,
            prompt=spec.prompt,
            censorlist=self._censor.censorlist,
        )
        return CheckImages(0, ImagesToCheck(record.key, spec.prompt, spec.width, spec.height, record.images, policy))

    def on_checked(self, message: SafetyChecked) -> None:
        """The safety child's verdicts for a job: report it (or fault it if they do not fit its images)."""
        if not self.link.answered(message.job_key):
            return
        record = self._context.registry.get(message.job_key)
        if record is None or record.state is not JobState.SAFETY:
            return
        if len(message.verdicts) != len(record.images):
            reason = f"{len(message.verdicts)} safety verdicts for {len(record.images)} images"
            self._reporter.fault(record, reason, transient_cause(record.spec.model))
            return
        record.verdicts = message.verdicts
        censored = sum(1 for verdict in message.verdicts if verdict.censorship)
        self._context.events.emit("job_checked", record.key, censored=censored)
        self._reporter.start_reporting(record)

    def abandoned(self, job_key: str, reason: str) -> None:
        """The safety child could not check a job: fault it (images must not go out unchecked)."""
        record = self._context.registry.get(job_key)
        if record is not None and record.state is JobState.SAFETY:
            self._reporter.fault(record, reason, transient_cause(record.spec.model))
