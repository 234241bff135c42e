"""Reporting ids to the local horde over HTTP: uploads, submits, duplicates, drops, fallbacks, faults."""

from __future__ import annotations

import base64

from horde_worker_regen.jobs.record import IdOutcome, JobRecord
from horde_worker_regen.jobs.submitter import ImageReport, Submitter
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from tests.jobs.conftest import HordeSession, RecordingSleep, webp_bytes


def _submitter(session: HordeSession, sleep: RecordingSleep, now: float = 1000.0) -> Submitter:
    return Submitter(session.client, clock=lambda: now, sleep=sleep)


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
    horde_session.horde.state.delete_request(horde_session.horde.state.requests[
        horde_session.horde.state.generations[record.ids[0]].wp_id])
    result = await _submitter(horde_session, RecordingSleep()).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "InvalidJobID" in result.reason


async def test_an_upload_that_keeps_failing_falls_back_to_inline_base64(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="upload", kind="error", status=502, times=10)
    sleep = RecordingSleep()
    image = webp_bytes()
    result = await _submitter(horde_session, sleep).report_image(record, ImageReport(0, image))
    assert result.outcome is IdOutcome.SUBMITTED
    assert len(sleep.delays) == 3  # four upload attempts, then inline
    assert _stored(horde_session, record, 0) == image  # the horde decoded and stored it itself


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


async def test_submits_are_not_retried_past_the_deadline(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    horde_session.horde.faults.add(endpoint="submit", kind="error", status=500, times=1)
    late = _submitter(horde_session, RecordingSleep(), now=record.deadline - 0.1)
    result = await late.report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
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
