"""Reporting a form: a post-processor's WebP uploaded to its `r2_upload`, then one submit, before its deadline.

A form done is submitted `{"id", "result", "state": "ok"}`: an analysis form's result object as its
child made it, a post-processor's `{"<form>": "R2"}` once its image is uploaded (the horde replaces
"R2" with the download URL). A form that failed, or whose image cannot be uploaded, is submitted
`{"id", "result": {}, "state": "faulted"}`, once: the horde re-queues it for another alchemist.
Transient errors (no answer, 5xx, 429 and the like) are retried with backoff while the deadline
allows. `DuplicateGen` and `InvalidJobID` (the horde already took the form back or never knew it) and
every other refusal end the form `dropped`: nothing more can be reported. Past the deadline the horde
has taken the form back, so reporting stops there too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from horde_worker_regen.horde.alchemy_wire import FormSubmitBody
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.jobs.form_record import FormRecord, FormState
from horde_worker_regen.scheduling.policy import retry_delay

RETRIED = frozenset({ErrorAction.RETRY, ErrorAction.BACK_OFF, ErrorAction.MAINTENANCE})
MAX_DELAY_S = 10.0


@dataclass(frozen=True)
class Reported:
    """How a form's report ended: its terminal state, the reward, why (when not submitted)."""

    state: FormState
    reward: float = 0.0
    reason: str = ""


class CannotReport(Exception):
    """The horde refused the report for good, or the form is no longer the alchemist's."""


class FormReporter:
    """Uploads and submits forms, each in a task of its own, and says how each one ended."""

    def __init__(
        self,
        client: HordeClient,
        on_end: Callable[[FormRecord, Reported], None],
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._on_end = on_end
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, record: FormRecord) -> None:
        """Start reporting a form in the REPORTING state."""
        task = asyncio.get_running_loop().create_task(self._report(record), name=f"form {record.form_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self, grace: float) -> None:
        """Give the reports in flight `grace` seconds (shutdown); those left are cancelled."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _report(self, record: FormRecord) -> None:
        try:
            async with asyncio.timeout(max(0.0, record.deadline - self._clock())):
                reported = await self._deliver(record)
        except TimeoutError:
            reported = Reported(FormState.DROPPED, reason="its deadline passed before it could be reported")
        except CannotReport as refusal:
            reported = Reported(FormState.DROPPED, reason=str(refusal))
        except asyncio.CancelledError:
            self._on_end(record, Reported(FormState.DROPPED, reason="the worker stopped before it was reported"))
            raise
        self._on_end(record, reported)

    async def _deliver(self, record: FormRecord) -> Reported:
        outcome = record.outcome
        if record.fault_reason is None and outcome is not None:
            result = outcome.result
            if outcome.image is not None:
                uploaded = await self._upload(record, outcome.image)
                result = {record.form: "R2"} if uploaded else None
            if result is not None:
                body = FormSubmitBody(id=record.form_id, result=result, state="ok")
                return Reported(FormState.SUBMITTED, await self._submit(body))
        await self._submit(FormSubmitBody.faulted(record.form_id))
        return Reported(FormState.FAULTED, reason=record.fault_reason or "")

    async def _upload(self, record: FormRecord, image: bytes) -> bool:
        """PUT the image to the form's r2_upload; False (after saying why) when it cannot be done."""
        if record.r2_upload is None:
            record.fault_reason = "the horde gave no r2_upload for its image"
            return False
        attempt = 0
        while True:  # until done, refused, or the deadline (the caller's timeout)
            try:
                await self._client.upload(record.r2_upload, image)
                return True
            except HordeRequestError as error:
                if error.status is not None and error.status < 500 and error.status != 429:
                    record.fault_reason = f"its image could not be uploaded ({error})"
                    logger.warning(f"Form {record.form_id}: {record.fault_reason}; reporting it faulted")
                    return False
                await asyncio.sleep(self._delay(attempt, error))
                attempt += 1

    async def _submit(self, body: FormSubmitBody) -> float:
        """Submit until the horde answers; the reward. CannotReport when it refuses for good."""
        attempt = 0
        while True:  # until answered, refused, or the deadline (the caller's timeout)
            try:
                return await self._client.interrogate_submit(body)
            except HordeRequestError as error:
                verdict = classify(error)
                if verdict.action not in RETRIED:
                    raise CannotReport(f"the horde refused its {body.state} submit ({error})") from None
                logger.debug(f"Form {body.id}: submit failed ({error}); retrying")
                await asyncio.sleep(max(min(verdict.delay, MAX_DELAY_S), self._delay(attempt, error)))
                attempt += 1

    def _delay(self, attempt: int, error: HordeRequestError) -> float:
        floor = min(error.retry_after or 0.0, MAX_DELAY_S)
        return max(floor, retry_delay(attempt, cap=MAX_DELAY_S, jitter=self._rng.uniform(0.5, 1.0)))
