"""Reporting one id: PUT its image to R2, then submit it; or submit it as faulted.

- The image goes to the id's own `r2_uploads[i]`. A PUT that may succeed later (429, 5xx, 408, a
  timeout, a dropped connection) is retried while the deadline leaves time for the inline submit
  (`UPLOAD_RESERVE_S`); then, or at once for an expired URL (403) or another refusal, the image is
  submitted inline as base64 (the horde uploads it). `"R2"` is only claimed after a successful upload.
- `DuplicateGen` means an earlier attempt landed (a lost response): success.
- `AbortedGen` / `InvalidJobID` mean the horde already gave up on the id: a logged drop, not a fault.
  Another definite refusal (`WrongCredentials`, a 4xx without rc, ...) ends the submit too.
- Everything else means "later", never "no": 429, 5xx, 408, timeouts and dropped connections are
  retried until the job's deadline, however many tries that takes, so a finished image is never
  given up to a burst of rate limits. (A 500 is also the horde's answer to a submit with an unknown
  key, §5; the start-up `find_user` check rules that out, so a 500 here is a failing horde.)
- Each wait is what the horde asked for (`Retry-After`, capped by `horde.retry_after`), else a
  jittered exponential backoff, and is cut so that the last try starts before the deadline. After
  the deadline the id is dropped (the horde's sweep re-queues it; a late `faulted` submit would
  re-queue it twice).
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from horde_sdk.ai_horde_api.apimodels import ImageGenerationJobSubmitRequest
from loguru import logger

from horde_worker_regen.horde.client import SUBMIT_TIMEOUT_S, UPLOAD_TIMEOUT_S, HordeClient
from horde_worker_regen.horde.errors import Classified, ErrorAction, HordeRequestError, classify
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobRecord
from horde_worker_regen.scheduling.policy import retry_delay

MAX_GEN_METADATA = 50
# The next try starts at least this long before the deadline (the horde's sweep aborts after it).
LAST_TRY_MARGIN_S = 1.0
# Upload retries stop this long before the deadline: room for a try that times out, then the inline submit.
UPLOAD_RESERVE_S = UPLOAD_TIMEOUT_S + SUBMIT_TIMEOUT_S + 10.0
JITTER = (0.5, 1.0)  # backoff factors: the retries of many ids failed by one outage spread out
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
    rng: random.Random = field(default_factory=random.Random)

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
            id=record.ids[index],
            generation=FAULTED_GENERATION,
            state="faulted",
            seed=record.spec.seed_of(index),
            gen_metadata=list(record.gen_metadata[:MAX_GEN_METADATA]),
        )
        result = await self._submit(record, index, request)
        if result.outcome is IdOutcome.SUBMITTED:
            return IdResult(IdOutcome.FAULTED, 0.0, record.fault_reason or "faulted")
        return result

    async def _upload(self, record: JobRecord, url: str, image: bytes) -> bool:
        attempt = 0
        while True:
            try:
                await self.client.upload(url, image)
                return True
            except HordeRequestError as error:
                if not _upload_may_succeed_later(error):
                    logger.warning(f"Job {record.key}: upload refused ({error})")
                    return False  # an expired URL (403) or another refusal: inline at once
                # A retry must leave time for a timed-out upload and then the inline submit.
                wait = self._fit(record.deadline - UPLOAD_RESERVE_S, self._wait_after(error, classify(error), attempt))
                log = logger.debug if error.status == 429 else logger.warning  # a rate limit is routine
                log(f"Job {record.key}: upload attempt {attempt + 1} failed: {error}")
                if wait is None:
                    return False
                await self.sleep(wait)
                attempt += 1

    async def _submit(self, record: JobRecord, index: int, request: ImageGenerationJobSubmitRequest) -> IdResult:
        attempt = 0
        while True:
            try:
                reward = await self.client.submit(request)
            except HordeRequestError as error:
                verdict = classify(error)
                refused = self._refused(record, index, error, verdict)
                if refused is not None:
                    return refused
                wait = self._fit(record.deadline, self._wait_after(error, verdict, attempt))
                if wait is None:
                    return self._dropped(record, index, f"no successful submit before its deadline ({error})")
                why = f"; {verdict.operator_message}" if verdict.operator_message else ""
                log = logger.debug if error.status == 429 else logger.warning  # a rate limit is routine
                log(
                    f"Job {record.ids[index]}: submit attempt {attempt + 1} failed ({error}){why}; "
                    f"retrying in {wait:.1f}s"
                )
                await self.sleep(wait)
                attempt += 1
                continue
            return IdResult(IdOutcome.SUBMITTED, reward)

    def _refused(self, record: JobRecord, index: int, error: HordeRequestError, verdict: Classified) -> IdResult | None:
        """The end of a submit the horde answered for good (done, gone or refused); None to retry."""
        job_id = record.ids[index]
        if verdict.action is ErrorAction.DUPLICATE:
            logger.info(f"Job {job_id}: already submitted (an earlier response was lost)")
            return IdResult(IdOutcome.SUBMITTED, 0.0, "duplicate")
        if verdict.action is ErrorAction.DROP:
            return self._dropped(record, index, f"the horde no longer holds it ({error.rc})")
        if verdict.action is ErrorAction.FATAL:
            logger.error(f"Job {job_id}: the horde refused the submit: {error}. {verdict.operator_message}")
            return IdResult(IdOutcome.DROPPED, 0.0, f"refused: {error}")
        return None

    def _wait_after(self, error: HordeRequestError, verdict: Classified, attempt: int) -> float:
        """How long to wait before the next try: as long as the horde asked (`Retry-After`, or the delay of
        a back-off rc), else a jittered exponential backoff; never less than its first step."""
        jitter = self.rng.uniform(*JITTER)
        if error.retry_after is not None:
            return max(error.retry_after, retry_delay(0, jitter=jitter))  # Retry-After: 0 is no tight loop
        told = verdict.delay if verdict.action is ErrorAction.BACK_OFF else 0.0
        return max(told, retry_delay(attempt, jitter=jitter))

    def _fit(self, deadline: float, wait: float) -> float | None:
        """`wait`, shortened so that the next try starts `LAST_TRY_MARGIN_S` before `deadline`; None when
        there is no time left for another try (the wait never runs past the deadline)."""
        left = deadline - LAST_TRY_MARGIN_S - self.clock()
        return min(wait, left) if left > 0 else None

    @staticmethod
    def _dropped(record: JobRecord, index: int, reason: str) -> IdResult:
        logger.warning(f"Job {record.ids[index]} dropped: {reason}")
        return IdResult(IdOutcome.DROPPED, 0.0, reason)


def _upload_may_succeed_later(error: HordeRequestError) -> bool:
    """No answer, a timeout, a rate limit or a failing R2: worth another try; any other refusal is not."""
    return error.status is None or error.status in (408, 429) or error.status >= 500
