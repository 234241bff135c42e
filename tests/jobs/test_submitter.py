"""Reporting ids to the local horde over HTTP: uploads, submits, duplicates, drops, fallbacks, faults,
and rate limits and failures that are retried until the deadline, never given up after a count."""

from __future__ import annotations

import base64
import random

from horde_sdk.ai_horde_api.apimodels import ImageGenerationJobSubmitRequest

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.record import IdOutcome, JobRecord
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.pipeline.submitter import LAST_TRY_MARGIN_S, UPLOAD_RESERVE_S, ImageReport, Submitter
from horde_worker_regen.scheduling.policy import retry_delay
from tests.jobs.conftest import HordeSession, RecordingSleep, webp_bytes
from tests.jobs.fake_time import SleepingClock


def _submitter(session: HordeSession, sleep: RecordingSleep, now: float = 1000.0) -> Submitter:
    return Submitter(session.client, clock=lambda: now, sleep=sleep)


def _timed(session: HordeSession, clock: SleepingClock, client: HordeClient | None = None) -> Submitter:
    return Submitter(client or session.client, clock=clock, sleep=clock.sleep, rng=random.Random(7))


class GenerationsSent(HordeClient):
    """The owner's client, remembering the `generation` of every submit ("R2" or inline base64)."""

    sent: list[str]

    async def submit(self, request: ImageGenerationJobSubmitRequest) -> float:
        self.sent.append(request.generation)
        return await super().submit(request)


def _generations_sent(session: HordeSession) -> GenerationsSent:
    client = GenerationsSent(session.session, session.horde.api_url, session.owner.api_key)
    client.sent = []
    return client


def _stored(session: HordeSession, record: JobRecord, index: int) -> bytes | None:
    stored = session.horde.state.objects.get(GENERATIONS_BUCKET, f"{record.ids[index]}.webp")
    return stored.data if stored else None


async def test_each_id_is_uploaded_to_its_own_url_and_submitted_with_its_seed(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(n=3, seed="500")
    assert len(record.ids) == 3
    submitter = _submitter(horde_session, RecordingSleep())
    images = [webp_bytes(colour=(index * 60, 0, 0)) for index in range(3)]
    for index, image in enumerate(images):
        metadata = ({"type": "batch_index", "value": "see_ref", "ref": str(index)},)
        result = await submitter.report_image(record, ImageReport(index, image, "ok", metadata))
        assert result.outcome is IdOutcome.SUBMITTED and result.reward > 0
        assert _stored(horde_session, record, index) == image
        assert horde_session.horde.state.generations[record.ids[index]].seed == 500  # the batch's seed


async def test_a_lost_submit_response_is_retried_and_the_duplicate_counts_as_success(
    horde_session: HordeSession,
) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="drop", times=1)
    sleep = RecordingSleep()
    result = await _submitter(horde_session, sleep).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.SUBMITTED and result.reason == "duplicate"
    assert len(sleep.delays) == 1
    assert horde_session.horde.state.generations[record.ids[0]].is_completed


async def test_a_job_the_horde_aborted_is_dropped_not_faulted(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.advance_clock(record.ttl + 1)
    assert horde_session.horde.sweep().aborted == [record.ids[0]]
    result = await _submitter(horde_session, RecordingSleep()).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "AbortedGen" in result.reason


async def test_a_job_the_horde_forgot_is_dropped(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.state.delete_request(
        horde_session.horde.state.requests[horde_session.horde.state.generations[record.ids[0]].wp_id]
    )
    result = await _submitter(horde_session, RecordingSleep()).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "InvalidJobID" in result.reason


async def test_an_upload_that_keeps_failing_is_retried_while_time_allows_then_goes_inline(
    horde_session: HordeSession,
) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="upload", kind="error", status=502)  # until the end of the test
    clock, client = SleepingClock(), _generations_sent(horde_session)
    image = webp_bytes()
    result = await _timed(horde_session, clock, client).report_image(record, ImageReport(0, image))
    assert result.outcome is IdOutcome.SUBMITTED
    assert len(clock.delays) > 4  # not a fixed number of tries: as many as the deadline leaves time for
    assert record.deadline - UPLOAD_RESERVE_S - 31 < clock.now <= record.deadline - UPLOAD_RESERVE_S
    assert client.sent == [base64.b64encode(image).decode("ascii")]  # inline, with time left to submit it
    assert _stored(horde_session, record, 0) == image  # the horde decoded and stored it itself


async def test_a_rate_limited_upload_waits_as_told_and_still_goes_to_r2(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="upload", kind="rate_limit", times=12, retry_after=3)
    clock, client = SleepingClock(), _generations_sent(horde_session)
    image = webp_bytes()
    result = await _timed(horde_session, clock, client).report_image(record, ImageReport(0, image))
    assert result.outcome is IdOutcome.SUBMITTED
    assert clock.delays == [3.0] * 12
    assert client.sent == ["R2"] and _stored(horde_session, record, 0) == image


async def test_an_expired_upload_url_goes_inline_at_once(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="upload", kind="expired_url", times=1)
    sleep = RecordingSleep()
    image = webp_bytes()
    result = await _submitter(horde_session, sleep).report_image(record, ImageReport(0, image))
    assert result.outcome is IdOutcome.SUBMITTED and sleep.delays == []
    assert _stored(horde_session, record, 0) == image


async def test_rate_limited_submits_wait_as_told(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="rate_limit", times=1, retry_after=4)
    sleep = RecordingSleep()
    result = await _submitter(horde_session, sleep).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.SUBMITTED and sleep.delays == [4.0]


async def test_a_long_burst_of_rate_limits_never_costs_the_image(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="rate_limit", times=30, retry_after=2)
    clock = SleepingClock()
    result = await _timed(horde_session, clock).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.SUBMITTED and result.reward > 0
    assert clock.delays == [2.0] * 30  # as told each time, not a growing backoff
    assert horde_session.horde.state.generations[record.ids[0]].is_completed


async def test_failing_submits_back_off_jittered_and_capped_until_they_land(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="error", status=503, times=9)
    clock = SleepingClock()
    result = await _timed(horde_session, clock).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.SUBMITTED
    assert len(clock.delays) == 9
    for attempt, delay in enumerate(clock.delays):
        assert retry_delay(attempt) / 2 <= delay <= retry_delay(attempt) <= 30
    assert len(set(clock.delays)) == 9  # jittered: ids failed by one outage do not retry in step


async def test_a_retry_after_longer_than_the_time_left_is_cut_to_it(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="rate_limit", times=1, retry_after=30)
    clock = SleepingClock(now=record.deadline - 10)
    result = await _timed(horde_session, clock).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.SUBMITTED
    assert clock.delays == [10 - LAST_TRY_MARGIN_S]  # one last try before the deadline, not a drop
    assert clock.now < record.deadline


async def test_a_definite_refusal_ends_the_submit_at_once(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="wrong_credentials", times=1)
    clock = SleepingClock()
    result = await _timed(horde_session, clock).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "WrongCredentials" in result.reason
    assert clock.delays == []


async def test_submits_are_not_retried_past_the_deadline(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="error", status=500, times=1)
    late = _submitter(horde_session, RecordingSleep(), now=record.deadline - 0.1)
    result = await late.report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
    assert not horde_session.horde.state.generations[record.ids[0]].is_completed


async def test_a_horde_failing_until_the_deadline_drops_the_id_without_waiting_past_it(
    horde_session: HordeSession,
) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="error", status=502)
    clock = SleepingClock()
    result = await _timed(horde_session, clock).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
    assert record.deadline - 31 < clock.now <= record.deadline - LAST_TRY_MARGIN_S
    assert not horde_session.horde.state.generations[record.ids[0]].is_completed


async def test_a_fault_is_submitted_once_per_id_and_re_queues_each_image(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(n=2)
    record.fault_reason = "the backend failed"
    submitter = _submitter(horde_session, RecordingSleep())
    results = [await submitter.report_fault(record, index) for index in range(2)]
    assert [result.outcome for result in results] == [IdOutcome.FAULTED, IdOutcome.FAULTED]
    state = horde_session.horde.state
    assert all(state.generations[job_id].faulted for job_id in record.ids)
    assert state.requests[state.generations[record.ids[0]].wp_id].n == 2


async def test_a_fault_past_the_deadline_is_not_submitted(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    result = await _submitter(horde_session, RecordingSleep(), now=record.deadline).report_fault(record, 0)
    assert result.outcome is IdOutcome.DROPPED
    assert not horde_session.horde.state.generations[record.ids[0]].faulted


def test_inline_images_are_plain_base64_webp() -> None:
    image = webp_bytes()
    assert base64.b64decode(base64.b64encode(image)) == image
