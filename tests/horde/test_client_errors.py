"""What the client makes of an error answer: untrusted text bounded to one line, Retry-After read."""

from __future__ import annotations

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import MAX_ERROR_TEXT
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.horde.retry_after import MAX_RETRY_AFTER_S
from tests.jobs.conftest import HordeSession
from tests.worker_support import MODEL


async def _pop_error(session: HordeSession) -> HordeRequestError:
    data = BridgeData(api_key=session.owner.api_key, dreamer_name="Client Dreamer", horde_url=session.horde.api_url)
    with pytest.raises(HordeRequestError) as raised:
        await session.client.pop(build_pop_request(data, [MODEL], bridge_agent(1)))
    return raised.value


async def test_a_hostile_error_message_becomes_one_bounded_line(horde_session: HordeSession) -> None:
    hostile = "fake\nWARNING | forged log line\r\x1b[2J" * 1000
    horde_session.horde.faults.add(endpoint="pop", kind="error", status=503, times=1, message=hostile)
    error = await _pop_error(horde_session)
    assert error.status == 503
    assert error.message.isprintable() and len(error.message) <= MAX_ERROR_TEXT + 1


async def test_a_rate_limit_carries_its_retry_after_capped(horde_session: HordeSession) -> None:
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=1, retry_after=3)
    error = await _pop_error(horde_session)
    assert error.status == 429 and error.retry_after == 3.0
    horde_session.horde.faults.add(endpoint="pop", kind="rate_limit", times=1, retry_after=10**9)
    assert (await _pop_error(horde_session)).retry_after == MAX_RETRY_AFTER_S
