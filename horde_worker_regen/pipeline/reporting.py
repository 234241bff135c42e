"""What to submit for each id of a job, and reporting a whole job one id at a time, concurrently.

Every id gets its own submit: its image (or censor image) with its own seed and a `batch_index`
entry, or a `faulted` submit when the job failed. A faulted batch reports every id, once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord
from horde_worker_regen.jobs.spec import ImageVerdict
from horde_worker_regen.pipeline.submitter import ImageReport

_STATE_FOR_CENSORSHIP = {"nsfw": "censored", "csam": "csam"}


class IdReporter(Protocol):
    """What reports each id of a job to the horde: the `Submitter` (or a fake of it in tests)."""

    async def report_image(self, record: JobRecord, report: ImageReport) -> IdResult:
        """Upload and submit the image of one id."""
        ...

    async def report_fault(self, record: JobRecord, index: int) -> IdResult:
        """Submit one id as faulted."""
        ...


def image_reports(record: JobRecord) -> list[ImageReport]:
    """One report per id: its image or censor image, submit state and gen_metadata."""
    reports = []
    for index, generated in enumerate(record.images):
        verdict = record.verdicts[index] if index < len(record.verdicts) else ImageVerdict(False, False)
        metadata: list[dict[str, Any]] = [{"type": "batch_index", "value": "see_ref", "ref": str(index)}]
        metadata += record.gen_metadata
        state, image = "ok", generated
        if verdict.censorship is not None:
            metadata.append({"type": "censorship", "value": verdict.censorship})
            state = _STATE_FOR_CENSORSHIP[verdict.censorship]
            image = verdict.replacement or generated
        reports.append(ImageReport(index, image, state, tuple(metadata)))
    return reports


async def report_job(
    submitter: IdReporter, record: JobRecord, reports: list[ImageReport] | None = None
) -> dict[int, IdResult]:
    """Submit every id of the job (`reports`, its images, or faults if it failed); one result per id."""
    if reports is None and (record.fault_reason is not None or not record.images):
        coroutines = [submitter.report_fault(record, index) for index in range(len(record.ids))]
    else:
        reports = image_reports(record) if reports is None else reports
        coroutines = [submitter.report_image(record, report) for report in reports]
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    outcome: dict[int, IdResult] = {}
    for index, result in enumerate(results):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):
            outcome[index] = IdResult(IdOutcome.DROPPED, 0.0, f"reporting failed: {result!r}")
        else:
            outcome[index] = result
    return outcome
