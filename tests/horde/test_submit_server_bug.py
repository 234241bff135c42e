"""The horde's HTTP 500 on a submit with a key it does not know (horde-api.md §5). The start-up
`find_user` check keeps an unknown key from ever reaching a submit, so a 500 to a submit is a failing
horde like any other 5xx: retried until the job's deadline, never past it, and never given up after
a fixed number of tries (which cost finished images under bursts of errors)."""

from __future__ import annotations

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import ErrorAction, HordeRequestError, classify
from horde_worker_regen.jobs.record import IdOutcome
from horde_worker_regen.pipeline.submitter import LAST_TRY_MARGIN_S, ImageReport, Submitter
from tests.jobs.conftest import HordeSession, webp_bytes
from tests.jobs.fake_time import SleepingClock


async def test_a_500_is_retried_until_the_deadline_and_credits_nothing(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record()
    unknown_key = HordeClient(horde_session.session, horde_session.horde.api_url, "z" * 22)
    clock = SleepingClock()
    result = await Submitter(unknown_key, clock=clock, sleep=clock.sleep).report_image(
        record, ImageReport(0, webp_bytes())
    )
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
    assert len(clock.delays) > 8  # more tries than the old fixed count allowed
    assert record.deadline - 31 < clock.now <= record.deadline - LAST_TRY_MARGIN_S  # until, never past, it
    pg = horde_session.horde.state.generations[record.ids[0]]
    assert not pg.is_completed  # nothing was credited to a key the horde does not know


def test_the_operator_hint_of_a_500_names_the_key_check_not_a_bound() -> None:
    verdict = classify(HordeRequestError(500, None, "Internal Server Error"))
    assert verdict.action is ErrorAction.RETRY
    assert "deadline" in verdict.operator_message and "api_key" in verdict.operator_message


async def test_an_unreachable_horde_is_retried_until_the_jobs_deadline(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(popped_at=1000.0)
    down = HordeClient(horde_session.session, "http://127.0.0.1:9/api", horde_session.owner.api_key)
    clock = SleepingClock()  # time passes only while the submitter waits
    result = await Submitter(down, clock=clock, sleep=clock.sleep).report_image(record, ImageReport(0, webp_bytes()))
    assert result.outcome is IdOutcome.DROPPED and "deadline" in result.reason
    assert clock.now > 1000.0 + record.ttl - 31  # it kept trying until the next wait would pass the deadline
    assert clock.now < record.deadline
