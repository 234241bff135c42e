"""remove_maintenance_on_init against the local horde: PUT maintenance=false on the worker found by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.maintenance import remove_maintenance
from tests.jobs.conftest import HordeSession

NAME = "Maintained Dreamer"


async def test_lifts_maintenance_on_the_owners_worker(horde_session: HordeSession) -> None:
    horde = horde_session.horde
    horde.state.add_worker(NAME, horde_session.owner)
    horde.horde.set_maintenance(NAME, True, "Too many faulted jobs")
    assert await remove_maintenance(horde_session.client, NAME) is True
    worker = horde.horde.worker(NAME)
    assert worker is not None and not worker.maintenance


async def test_a_worker_the_horde_does_not_know_yet_is_nothing_to_lift(horde_session: HordeSession) -> None:
    assert await remove_maintenance(horde_session.client, "A Brand New Dreamer") is False


async def test_someone_elses_worker_is_left_alone_and_nothing_raises(horde_session: HordeSession) -> None:
    horde = horde_session.horde
    stranger = horde.add_user("stranger", trusted=True)
    horde.state.add_worker(NAME, stranger)
    horde.horde.set_maintenance(NAME, True)
    assert await remove_maintenance(horde_session.client, NAME) is False
    worker = horde.horde.worker(NAME)
    assert worker is not None and worker.maintenance


async def test_an_unreachable_horde_is_not_fatal_here(horde_session: HordeSession) -> None:
    closed = HordeClient(horde_session.session, "http://127.0.0.1:9/api", horde_session.owner.api_key)
    assert await remove_maintenance(closed, NAME) is False


def test_the_backoff_cap_setting_names_its_bounds() -> None:
    assert BridgeData(horde_backoff_cap=2).horde_backoff_cap == 2.0
    with pytest.raises(ValidationError) as raised:
        BridgeData(horde_backoff_cap=0)
    assert "horde_backoff_cap" in str(raised.value) and "greater than or equal to 0.1" in str(raised.value)
