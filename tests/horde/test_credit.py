"""Kudos as paid: the horde's bridge factor, and the kudos the horde credited read back from its record."""

from __future__ import annotations

import pytest

from horde_worker_regen.horde.credit import Credited, CreditWatch, bridge_kudos_factor
from horde_worker_regen.horde.pop import REGEN_BRIDGE_NAME
from horde_worker_regen.pipeline.submitter import ImageReport, Submitter
from tests.jobs.conftest import HordeSession, webp_bytes


@pytest.mark.parametrize(
    ("name", "version", "factor"),
    [
        (REGEN_BRIDGE_NAME, 13, 1.0),
        (REGEN_BRIDGE_NAME, 14, 1.0),
        (REGEN_BRIDGE_NAME, 9, 0.9),
        (REGEN_BRIDGE_NAME, 1, 0.9),
        ("AI Horde Worker", 26, 0.9),
        ("My Own Bridge", 13, 0.75),
    ],
)
def test_the_factor_follows_the_bridge_name_and_version(name: str, version: int, factor: float) -> None:
    assert bridge_kudos_factor(name, version) == factor


async def test_credited_kudos_are_what_the_horde_added_to_the_worker_record_since_the_first_reading(
    horde_session: HordeSession,
) -> None:
    readings: list[Credited] = []
    watch = CreditWatch(horde_session.client, "Unit Dreamer", readings.append)
    await watch.read()  # the worker does not exist on the horde yet: everything it earns is this run's
    assert watch.credited is not None and watch.credited.total == 0.0
    rewards = 0.0
    for index in range(2):
        record = await horde_session.pop_record(f"a lake {index}")
        result = await Submitter(horde_session.client).report_image(record, ImageReport(0, webp_bytes()))
        rewards += result.reward
    await watch.read()
    [worker] = horde_session.horde.state.workers.values()
    assert rewards > 0
    assert watch.credited.jobs == pytest.approx(worker.kudos_generated, abs=0.01)
    assert watch.credited.jobs == pytest.approx(rewards * 0.9, abs=0.02)  # bridge_agent(1): an older official bridge
    assert readings[-1] == watch.credited

    later = CreditWatch(horde_session.client, "Unit Dreamer", readings.append)
    await later.read()  # a restarted worker: what was credited before is the baseline
    assert later.credited is not None and later.credited.total == 0.0


async def test_a_horde_that_cannot_be_asked_leaves_the_figure_unread(horde_session: HordeSession) -> None:
    watch = CreditWatch(horde_session.client, "Unit Dreamer", lambda credited: None)
    horde_session.horde.faults.add(endpoint="*", kind="down")
    await watch.read()
    assert watch.credited is None
