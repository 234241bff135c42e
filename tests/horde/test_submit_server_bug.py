"""The horde's HTTP 500 on a submit with a key it does not know (horde-api.md §5) is retried a bounded
number of times, and the log says why."""

from __future__ import annotations

from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.record import IdOutcome
from horde_worker_regen.jobs.submitter import SUBMIT_ATTEMPTS, ImageReport, Submitter
from tests.jobs.conftest import HordeSession, RecordingSleep, webp_bytes


async def test_a_500_from_an_unknown_key_is_bounded_and_explained(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    unknown_key = HordeClient(horde_session.session, horde_session.horde.api_url, "z" * 22)
    sleep = RecordingSleep()
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING", format="{message}")
    try:
        result = await Submitter(unknown_key, clock=lambda: 1000.0, sleep=sleep).report_image(
            record, ImageReport(0, webp_bytes()))
    finally:
        logger.remove(sink)
    assert result.outcome is IdOutcome.DROPPED and f"{SUBMIT_ATTEMPTS} submit attempts failed" in result.reason
    assert len(sleep.delays) == SUBMIT_ATTEMPTS - 1  # no more tries than that, whatever the deadline
    assert sum(sleep.delays) < 2 * 60  # and well inside a job's ttl
    retries = [line for line in lines if "submit attempt" in line and "failed (HTTP" in line]
    assert len(retries) == SUBMIT_ATTEMPTS - 1
    assert all("known server bug" in line and "bounded" in line for line in retries)
    pg = horde_session.horde.state.generations[record.ids[0]]
    assert not pg.is_completed  # nothing was credited to a key the horde does not know


async def test_an_unreachable_horde_is_retried_until_the_jobs_deadline(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(popped_at=1000.0)
    down = HordeClient(horde_session.session, "http://127.0.0.1:9/api", horde_session.owner.api_key)
    now = [1000.0]

    async def sleep(delay: float) -> None:  # time passes only while the submitter waits
        now[0] += delay

    submitter = Submitter(down, clock=lambda: now[0], sleep=sleep)
    result = await submitter.report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
    assert now[0] > 1000.0 + record.ttl - 31  # it kept trying until the next wait would pass the deadline
    assert now[0] < record.deadline
