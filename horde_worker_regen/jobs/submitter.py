"""Reporting one id: PUT its image to R2, then submit it; or submit it as faulted.

- The image goes to the id's own `r2_uploads[i]`, retried with backoff while the deadline allows;
  if the upload keeps failing, the image is submitted inline as base64 (the horde uploads it).
  `"R2"` is only ever claimed after a successful upload.
- `DuplicateGen` means an earlier attempt landed (a lost response): success.
- `AbortedGen` / `InvalidJobID` mean the horde already gave up on the id: a logged drop, not a fault.
- Transient errors are retried with backoff only while the deadline allows; after it, the id is
  dropped (the horde's sweep re-queues it; a late `faulted` submit would re-queue it twice). Errors
  the horde answered (5xx; a 500 is also its answer to an unknown key, §5) get `SUBMIT_ATTEMPTS`
  tries at most; a horde that does not answer at all (down, unreachable) is retried until the deadline.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from horde_sdk.ai_horde_api.apimodels import ImageGenerationJobSubmitRequest
from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord
from horde_worker_regen.scheduling.policy import retry_delay

MAX_GEN_METADATA = 50
UPLOAD_ATTEMPTS = 4
SUBMIT_ATTEMPTS = 8
# Only a backstop: unanswered submits end at the job's deadline long before this many tries.
UNANSWERED_SUBMIT_ATTEMPTS = 60
FAULTED_GENERATION = "Faulted"
R2_GENERATION = "R2"


@dataclass(frozen=True)
class ImageReport:
    """What to submit for one id that has an image."""

    index: int
    image: bytes
    state: str = "ok"
    gen_metadata: tuple[dict[str, Any], ...] = ()


@dataclass
class Submitter:
    """Uploads and submits through the horde client, one id at a time."""

    client: HordeClient
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep)

    async def report_image(self, record: JobRecord, report: ImageReport) -> IdResult:
        """Upload (or inline) the image of one id and submit it."""
        url = record.upload_urls[report.index]
        generation = R2_GENERATION
        if url is None or not await self._upload(record, url, report.image):
            logger.warning(f"Job {record.ids[report.index]}: submitting the image inline (upload failed)")
            generation = base64.b64encode(report.image).decode("ascii")
        request = ImageGenerationJobSubmitRequest(
            id=record.ids[report.index],
            generation=generation,
            state=report.state,
            seed=record.spec.seed_of(report.index),
            censored=report.state != "ok",
            gen_metadata=list(report.gen_metadata[:MAX_GEN_METADATA]),
        )
        return await self._submit(record, report.index, request)

    async def report_fault(self, record: JobRecord, index: int) -> IdResult:
        """Submit one id as faulted (once), so the horde re-queues it at once.

        The submit carries the job's gen_metadata: what is known of why it failed (a field of its pop
        answer outside the contract, an input that could not be fetched)."""
        if self.clock() >= record.deadline:
            return self._dropped(record, index, "its deadline passed before the fault could be reported")
        request = ImageGenerationJobSubmitRequest(
            id=record.ids[index], generation=FAULTED_GENERATION, state="faulted", seed=record.spec.seed_of(index),
            gen_metadata=list(record.gen_metadata[:MAX_GEN_METADATA]),
        )
        result = await self._submit(record, index, request)
        if result.outcome is IdOutcome.SUBMITTED:
            return IdResult(IdOutcome.FAULTED, 0.0, record.fault_reason or "faulted")
        return result

    async def _upload(self, record: JobRecord, url: str, image: bytes) -> bool:
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                await self.client.upload(url, image)
                return True
            except HordeRequestError as error:
                delay = retry_delay(attempt)
                logger.warning(f"Job {record.key}: upload attempt {attempt + 1} failed: {error}")
                last = attempt + 1 == UPLOAD_ATTEMPTS
                if last or error.status == 403 or self.clock() + delay >= record.deadline:
                    return False  # attempts spent, expired URL, or no time left: fall back to inline
                await self.sleep(delay)
        return False

    async def _submit(self, record: JobRecord, index: int, request: ImageGenerationJobSubmitRequest) -> IdResult:
        job_id = record.ids[index]
        answered = 0
        for attempt in range(UNANSWERED_SUBMIT_ATTEMPTS):
            try:
                reward = await self.client.submit(request)
            except HordeRequestError as error:
                verdict = classify(error)
                if verdict.action is ErrorAction.DUPLICATE:
                    logger.info(f"Job {job_id}: already submitted (an earlier response was lost)")
                    return IdResult(IdOutcome.SUBMITTED, 0.0, "duplicate")
                if verdict.action is ErrorAction.DROP:
                    return self._dropped(record, index, f"the horde no longer holds it ({error.rc})")
                if verdict.action is ErrorAction.FATAL:
                    logger.error(f"Job {job_id}: the horde refused the submit: {error}")
                    return IdResult(IdOutcome.DROPPED, 0.0, f"refused: {error}")
                delay = max(verdict.delay if verdict.action is ErrorAction.BACK_OFF else 0.0, retry_delay(attempt))
                answered += error.status is not None
                if answered == SUBMIT_ATTEMPTS:
                    break
                if self.clock() + delay >= record.deadline:
                    return self._dropped(record, index, f"no successful submit before its deadline ({error})")
                why = f"; {verdict.operator_message}" if verdict.operator_message else ""
                logger.warning(f"Job {job_id}: submit attempt {attempt + 1} failed ({error}){why}")
                await self.sleep(delay)
                continue
            return IdResult(IdOutcome.SUBMITTED, reward)
        return self._dropped(record, index, f"{attempt + 1} submit attempts failed")

    @staticmethod
    def _dropped(record: JobRecord, index: int, reason: str) -> IdResult:
        logger.warning(f"Job {record.ids[index]} dropped: {reason}")
        return IdResult(IdOutcome.DROPPED, 0.0, reason)
