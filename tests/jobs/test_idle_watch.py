"""`minutes_allowed_without_jobs`: one clear warning per period without a job, through the real popper."""

from __future__ import annotations

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.pipeline.idle_watch import IdleWatch
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from tests.jobs.conftest import HordeSession
from tests.jobs.test_popper import StubPipeline
from tests.worker_support import MODEL, queue


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if "minutes_allowed_without_jobs" in line]


async def test_a_period_without_jobs_warns_once_with_the_reasons_and_a_job_starts_the_period_again(
    horde_session: HordeSession, caplog_loguru: list[str]
) -> None:
    clock = ManualClock()
    data = BridgeData(
        api_key=horde_session.owner.api_key,
        dreamer_name="Idle Dreamer",
        horde_url=horde_session.horde.api_url,
        max_power=8,
        minutes_allowed_without_jobs=30,
    )
    popper = Popper(
        horde_session.client,
        build_pop_request(data, [MODEL], bridge_agent(1)),
        StubPipeline(),  # type: ignore[arg-type]
        WorkerStats(),
        PopperSettings(slots=1, queue_size=0),
        on_stop=lambda reason, code: None,
        idle=IdleWatch(data.minutes_allowed_without_jobs, data.max_power, clock),
    )
    queue(horde_session.horde, horde_session.requester, "a huge castle", width=2048, height=2048)
    await popper._pop_once()  # too large for max_power 8: no job
    clock.now += 29 * 60
    await popper._pop_once()
    assert _warnings(caplog_loguru) == []  # not a whole period yet
    clock.now += 61
    await popper._pop_once()
    [warning] = _warnings(caplog_loguru)
    assert "No job for 30 minutes" in warning and MODEL in warning and "max_power 8" in warning
    assert "requests are larger than max_power allows: 3" in warning  # the horde's skip counts of the period
    await popper._pop_once()
    assert len(_warnings(caplog_loguru)) == 1  # once per period, not on every pop
    queue(horde_session.horde, horde_session.requester, "a small house", width=64, height=64)
    clock.now += 29 * 60
    assert await popper._pop_once() == 0.0  # a job: the period starts again
    clock.now += 29 * 60
    await popper._pop_once()
    assert len(_warnings(caplog_loguru)) == 1


def test_zero_turns_the_warning_off(caplog_loguru: list[str]) -> None:
    clock = ManualClock()
    watch = IdleWatch(0, 8, clock)
    clock.now += 10**6
    assert watch.no_job({"models": 3}, [MODEL]) is None
    assert _warnings(caplog_loguru) == []
