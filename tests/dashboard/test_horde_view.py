"""What the dashboard says about the horde: its address, the popper's state, and moderators' messages."""

from __future__ import annotations

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import build_snapshot
from tests.dashboard.conftest import build_parts
from tests.worker_support import horde_with_users, queue

MESSAGE = {
    "id": "01fb01b1-198c-431d-824f-f84e42e99974",
    "message": "Please update your worker <b>now</b>",
    "origin": "AI Horde Moderators",
    "expiry": "Thu, 06 Aug 2026 12:00:00 -0000",
}


async def test_moderator_messages_and_the_horde_state_reach_the_status_page(session: aiohttp.ClientSession) -> None:
    async with horde_with_users() as (horde, owner, requester):
        data = BridgeData(api_key=owner.api_key, dreamer_name="Dashboard Dreamer", horde_url=horde.api_url)
        parts = await build_parts(session, data, horde_url=horde.api_url)
        worker = build_snapshot(parts.sources)["worker"]
        assert (worker["horde_url"], worker["state"], worker["horde_messages"]) == (data.horde_url, "serving", [])

        queue(horde, requester, "a moor")
        horde.faults.add(endpoint="pop", kind="mangle", path=["messages"], value=[MESSAGE, "not a message"], times=2)
        queue(horde, requester, "a fen")
        await parts.popper._pop_once()
        await parts.popper._pop_once()  # the same message again: kept once
        assert build_snapshot(parts.sources)["worker"]["horde_messages"] == [MESSAGE]

        down = horde.faults.add(endpoint="*", kind="down")
        await parts.popper._pop_once()
        assert build_snapshot(parts.sources)["worker"]["state"] == "horde unreachable"
        horde.faults.remove(down.id)
