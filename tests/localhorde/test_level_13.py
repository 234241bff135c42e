"""Capability level 13 on the local horde: its eight post-processors reach only a bridge claiming 13 or more,
as the agent is parsed on the server (semver, pre-releases below their release), and requesters can ask for
each of them (at most one upscaler)."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.capabilities import bridge_kudos_multiplier, level_introducing
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.schemas import FACE_FIXERS
from horde_worker_regen.localhorde.testing import LEVEL_13_POST_PROCESSORS, post_processing_request
from tests.localhorde.support import Client, assert_error, pop, queue
from tests.localhorde.test_requester import post_async

UPSCALERS_13 = [name for name in LEVEL_13_POST_PROCESSORS if name not in FACE_FIXERS]
FACE_FIXERS_13 = [name for name in LEVEL_13_POST_PROCESSORS if name in FACE_FIXERS]
BELOW_13 = ["12.9.9", "9", "13.0.0-beta.1", "13.0.0-rc.2", "v13.0.0", "13.x", " 13", "013"]
AT_13 = ["13", "13.0", "13.0.0", "13.0.0+dev.gabc", "13.15.0", "17.2.1"]


def regen(version: str) -> str:
    return f"AI Horde Worker reGen:{version}:https://example.invalid/a:b"


def test_the_eight_are_level_13s_six_upscalers_and_two_face_restorers() -> None:
    assert len(LEVEL_13_POST_PROCESSORS) == 8 and len(UPSCALERS_13) == 6
    assert set(FACE_FIXERS_13) == {"GFPGANv1.3", "RestoreFormer"}
    assert {level_introducing(name) for name in LEVEL_13_POST_PROCESSORS} == {13}
    assert level_introducing("GFPGAN") == 1 and level_introducing("no such thing") is None


@pytest.mark.parametrize("name", LEVEL_13_POST_PROCESSORS)
@pytest.mark.parametrize("version", BELOW_13)
async def test_a_bridge_below_13_is_skipped_for_bridge_version(
    *, client: Client, horde: LocalHorde, owner: User, requester: User, name: str, version: str
) -> None:
    queue(horde, requester, **post_processing_request("Deliberate", name))
    status, body = await pop(client, owner, bridge_agent=regen(version))
    assert status == 200 and body["ids"] == []
    assert body["skipped"]["bridge_version"] == 1


@pytest.mark.parametrize("name", LEVEL_13_POST_PROCESSORS)
@pytest.mark.parametrize("version", AT_13)
async def test_a_bridge_at_13_or_above_gets_it(
    *, client: Client, horde: LocalHorde, owner: User, requester: User, name: str, version: str
) -> None:
    queue(horde, requester, **post_processing_request("Deliberate", name))
    status, body = await pop(client, owner, bridge_agent=regen(version))
    assert status == 200 and len(body["ids"]) == 1
    assert body["payload"]["post_processing"] == [name]


async def test_the_older_post_processors_still_reach_a_level_9_bridge(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, params={"post_processing": ["GFPGAN", "RealESRGAN_x4plus"]})
    status, body = await pop(client, owner, bridge_agent=regen("9"))
    assert status == 200 and len(body["ids"]) == 1


@pytest.mark.parametrize(
    ("agent", "factor"),
    [
        (regen("13"), 1.0),
        (regen("13.0.0+dev.gabc"), 1.0),  # build metadata is ignored
        (regen("13.0.0-beta.1"), 0.9),  # a pre-release is below its release: an older official version
        (regen("9"), 0.9),
        (regen("v13"), 0.75),  # does not parse: an unknown bridge
        (regen("13.0.0.1"), 0.75),
        ("AI Horde Worker reGen:13", 0.75),  # fewer than two colons
        ("AI Horde Worker:24.0.0:https://x", 1.0),  # the legacy name's latest key is 24
        ("AI Horde Worker:23.0.0:https://x", 0.9),
    ],
)
def test_the_kudos_factor_follows_the_agent_as_the_server_parses_it(agent: str, factor: float) -> None:
    assert bridge_kudos_multiplier(agent) == factor


@pytest.mark.parametrize("name", LEVEL_13_POST_PROCESSORS)
async def test_a_requester_may_ask_for_each_of_the_eight(
    client: Client, horde: LocalHorde, requester: User, name: str
) -> None:
    status, body = await post_async(client, requester, post_processing_request("Deliberate", name))
    assert status == 202
    assert horde.state.requests[body["id"]].params["post_processing"] == [name]


@pytest.mark.parametrize(
    "post_processing",
    [
        ["4xNomos8kSC", "4xLSDIRplus"],
        ["2xModernSpanimationV1", "RealESRGAN_x4plus"],
        ["GFPGANv1.3", "4xNomos2_hq_dat2", "4xNomosWebPhoto_RealPLKSR"],
    ],
)
async def test_at_most_one_upscaler_new_or_old(client: Client, requester: User, post_processing: list[str]) -> None:
    body: dict[str, Any] = {"prompt": "x", "params": {"post_processing": post_processing}}
    assert_error(await post_async(client, requester, body), 400, "TooManyUpscalers")


async def test_face_restorers_go_with_one_upscaler(client: Client, requester: User) -> None:
    post_processing = ["RestoreFormer", "GFPGANv1.3", "4xNomos2_realplksr_dysample", "strip_background"]
    body: dict[str, Any] = {"prompt": "x", "params": {"post_processing": post_processing, "facefixer_strength": 0.5}}
    assert (await post_async(client, requester, body))[0] == 202
