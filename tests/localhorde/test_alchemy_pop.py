"""`POST /v2/interrogate/pop`: the answer's shape, input validation, eligibility, order, names, check-in."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.alchemy_forms import FORM_NAMES
from horde_worker_regen.localhorde.alchemy_matching import AlchemyPopContext, refusal
from horde_worker_regen.localhorde.alchemy_requests import queue_interrogation
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET, SOURCES_BUCKET
from tests.localhorde.alchemy_support import (
    ALCHEMIST,
    alchemist_named,
    ipop,
    ipop_body,
    png_bytes,
    queue_alchemy,
)
from tests.localhorde.support import Client, assert_error, path_of, pop

VALIDATION = "Input payload validation failed"
IMAGE_URL = "https://images.example.invalid/cat.png"


async def test_a_popped_form_has_the_contract_shape(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    payload = {"facefixer_strength": 0.5, "strict": True, "unused": None}
    i = queue_alchemy(horde, requester, ["caption", {"name": "RealESRGAN_x4plus", "payload": payload}])
    caption_id, upscale_id = i.form_ids
    status, body = await ipop(client, owner, amount=2)
    assert status == 200 and body["skipped"] == {}
    caption, upscale = body["forms"]
    assert set(caption) == {"id", "form", "source_image"}  # no payload asked for, no upload for a caption
    assert (caption["id"], caption["form"]) == (caption_id, "caption")
    assert set(upscale) == {"id", "form", "payload", "source_image", "r2_upload"}
    assert upscale["payload"] == {"facefixer_strength": "0.5", "strict": "True"}  # strings only, nulls dropped
    assert path_of(upscale["r2_upload"]).startswith(f"/r2/{GENERATIONS_BUCKET}/{upscale_id}.webp?")
    assert path_of(caption["source_image"]).startswith(f"/r2/{SOURCES_BUCKET}/{i.id}.webp?")
    source = await client.get(path_of(caption["source_image"]))
    assert source.status == 200 and await source.read() == png_bytes()
    assert [f.state for f in horde.state.alchemy.forms_of(i)] == [FormState.PROCESSING] * 2


async def test_every_post_processor_and_only_they_get_an_upload_url(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester, list(FORM_NAMES))
    _, body = await ipop(client, owner, forms=list(FORM_NAMES), amount=len(FORM_NAMES))
    uploads = {entry["form"] for entry in body["forms"] if "r2_upload" in entry}
    interrogators = {"caption", "interrogation", "nsfw", "vectorize", "palette", "describe", "aesthetic"}
    assert len(body["forms"]) == len(FORM_NAMES)
    assert uploads == set(FORM_NAMES) - interrogators and "strip_background" in uploads


async def test_a_requesters_url_is_passed_through(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    body = {"forms": [{"name": "nsfw"}], "source_image": IMAGE_URL}
    i = queue_interrogation(horde, requester, body, image_size=(800, 600))
    _, answer = await ipop(client, owner)
    assert answer["forms"][0]["source_image"] == IMAGE_URL
    assert i.image_tiles == 4 and horde.state.objects.get(SOURCES_BUCKET, f"{i.id}.webp") is None


async def test_no_work_is_forms_null(client: Client, owner: User) -> None:
    assert await ipop(client, owner) == (200, {"forms": None, "skipped": {}})


async def test_an_empty_forms_list_matches_nothing(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    i = queue_alchemy(horde, requester, ["caption"])
    assert await ipop(client, owner, forms=[]) == (200, {"forms": None, "skipped": {}})
    body = ipop_body(name="alchemist-2")
    del body["forms"]
    assert await ipop(client, owner, body) == (200, {"forms": None, "skipped": {}})
    assert horde.state.alchemy.forms_of(i)[0].state is FormState.WAITING
    assert alchemist_named(horde).forms == ["caption"]  # what the server stores for an empty list


async def test_only_the_forms_named_in_the_pop_are_offered(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester, ["caption", "nsfw", "interrogation"])
    _, body = await ipop(client, owner, forms=["nsfw"], amount=5)
    assert [f["form"] for f in body["forms"]] == ["nsfw"]


async def test_one_unknown_form_name_refuses_the_whole_pop(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    i = queue_alchemy(horde, requester, ["caption"])
    status, body = await ipop(client, owner, forms=["caption", "post-process"])
    assert status == 400
    assert body == {"errors": {"forms.1": f"'post-process' is not one of {list(FORM_NAMES)!r}"}, "message": VALIDATION}
    assert horde.worker(ALCHEMIST) is None
    assert horde.state.alchemy.forms_of(i)[0].state is FormState.WAITING


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"threads": 0}, {"threads": "0 is less than the minimum of 1"}),
        ({"threads": 101}, {"threads": "101 is greater than the maximum of 100"}),
        ({"max_tiles": 0}, {"max_tiles": "0 is less than the minimum of 1"}),
        ({"max_tiles": 257}, {"max_tiles": "257 is greater than the maximum of 256"}),
        ({"amount": "2"}, {"amount": "'2' is not of type 'integer'"}),
        ({"amount": True}, {"amount": "True is not of type 'integer'"}),
        ({"bridge_agent": "x" * 1001}, {"bridge_agent": f"'{'x' * 1001}' is too long"}),
        ({"name": None}, {"name": "None is not of type 'string'"}),
        ({"forms": "caption"}, {"forms": "'caption' is not of type 'array'"}),
        ({"priority_usernames": ["a#1", 2]}, {"priority_usernames.1": "2 is not of type 'string'"}),
    ],
)
async def test_pop_schema_errors(
    client: Client, owner: User, overrides: dict[str, Any], errors: dict[str, str]
) -> None:
    assert await ipop(client, owner, **overrides) == (400, {"errors": errors, "message": VALIDATION})


@pytest.mark.parametrize("overrides", [{"threads": 100, "max_tiles": 256}, {"threads": 1, "max_tiles": 1}, {}])
async def test_bounds_are_inclusive(client: Client, owner: User, overrides: dict[str, Any]) -> None:
    assert (await ipop(client, owner, **overrides))[0] == 200


async def test_reqparse_requires_the_key_and_the_name(client: Client, owner: User) -> None:
    body = ipop_body()
    del body["name"]
    status, answer = await ipop(client, owner, body)
    assert (status, answer["errors"]) == (
        400,
        {"name": "The worker's unique name, to track contributions Missing required parameter in the JSON body"},
    )
    resp = await client.post("/api/v2/interrogate/pop", json=ipop_body())
    assert resp.status == 400 and "apikey" in (await resp.json())["errors"]


async def test_priority_usernames_need_a_hash_before_the_key_is_even_checked(client: Client, owner: User) -> None:
    message = "Priority usernames need to be provided in the form of 'alias#number'. Example: 'db0#1'"
    assert_error(await ipop(client, "not a key", priority_usernames=["db0"]), 400, "BadRequest", message)
    assert (await ipop(client, owner, priority_usernames=["db0#1", "nobody#999"]))[0] == 200


async def test_unknown_and_anonymous_keys(client: Client) -> None:
    assert_error(await ipop(client, "not a key"), 401, "InvalidAPIKey")
    assert_error(await ipop(client, "0000000000"), 403, "AnonForbiddenWorker")


async def test_max_tiles_defaults_to_80_and_is_stored(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    body = ipop_body()
    del body["max_tiles"]
    await ipop(client, owner, body)
    assert alchemist_named(horde).max_tiles == 80
    await ipop(client, owner, max_tiles=3)
    assert alchemist_named(horde).max_tiles == 3


def _queue_url(horde: LocalHorde, user: User, size: tuple[int, int], form: str = "RealESRGAN_x4plus") -> None:
    queue_interrogation(horde, user, {"forms": [{"name": form}], "source_image": IMAGE_URL}, image_size=size)


@pytest.mark.parametrize(
    ("size", "max_tiles", "served"),
    [
        ((512, 512), 1, True),
        ((513, 512), 1, False),
        ((513, 512), 2, True),
        ((1024, 1024), 4, True),
        ((1025, 1024), 4, False),
        ((1025, 1024), 6, True),
        ((4096, 5120), 80, True),
        ((4097, 5120), 80, False),
    ],
)
async def test_a_form_is_served_only_if_its_tiles_fit_max_tiles(
    *,
    client: Client,
    horde: LocalHorde,
    owner: User,
    requester: User,
    size: tuple[int, int],
    max_tiles: int,
    served: bool,
) -> None:
    _queue_url(horde, requester, size, "caption")  # tiles bound every form, not only post-processors
    _, body = await ipop(client, owner, max_tiles=max_tiles)
    assert (body["forms"] is not None) is served
    assert body["skipped"] == {}  # the tile filter is not a counted skip


async def test_amount_is_a_maximum_and_at_least_one_form_comes_back(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester, ["caption", "nsfw", "interrogation"])
    assert len((await ipop(client, owner, amount=2))[1]["forms"]) == 2
    assert len((await ipop(client, owner, amount=0))[1]["forms"]) == 1
    assert (await ipop(client, owner, amount=5))[1]["forms"] is None


async def test_owner_and_priority_users_first_then_richest_then_oldest(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    poor = horde.add_user("poor", kudos=1)
    rich = horde.add_user("rich", kudos=900)
    friend = horde.add_user("friend", kudos=0)
    first_poor = queue_alchemy(horde, poor)
    clock.advance(1)
    second_poor = queue_alchemy(horde, poor)
    rich_request = queue_alchemy(horde, rich)
    friend_request = queue_alchemy(horde, friend)
    own = queue_alchemy(horde, owner)
    _, body = await ipop(client, owner, amount=10, priority_usernames=[friend.alias])
    popped = [f["id"] for f in body["forms"]]
    expected = [own, friend_request, rich_request, first_poor, second_poor]
    assert popped == [i.form_ids[0] for i in expected]


async def test_requests_for_trusted_workers_skip_untrusted_owners(
    client: Client, horde: LocalHorde, requester: User
) -> None:
    untrusted = horde.add_user("untrusted")
    queue_alchemy(horde, requester, trusted_workers=True)
    assert await ipop(client, untrusted) == (200, {"forms": None, "skipped": {"untrusted": 1}})
    trusted = horde.add_user("trusted", trusted=True)
    assert (await ipop(client, trusted, name="alchemist-2"))[1]["forms"] is not None


async def test_unsafe_requests_go_to_trusted_owners_or_come_from_trusted_requesters(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    untrusted = horde.add_user("untrusted")
    queue_alchemy(horde, requester, safe_ip=False)
    assert await ipop(client, untrusted) == (200, {"forms": None, "skipped": {"untrusted": 1}})
    vouched = horde.add_user("vouched", trusted=True, kudos=10)
    queue_alchemy(horde, vouched, safe_ip=False)
    assert (await ipop(client, untrusted))[1]["forms"] is not None
    assert (await ipop(client, owner, name="trusted-alchemist"))[1]["forms"] is not None


async def test_upfront_kudos_rule_and_the_pop_never_sets_it(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    broke = horde.add_user("broke", kudos=3)
    i = queue_alchemy(horde, broke, ["interrogation", "caption"])
    interrogation_form, caption_form = horde.state.alchemy.forms_of(i)
    await ipop(client, owner, forms=[])
    worker = alchemist_named(horde)
    worker.require_upfront_kudos = True
    ctx = AlchemyPopContext(worker=worker, owner=owner, forms=frozenset(), requesters=horde.state.users)
    assert refusal(ctx, interrogation_form, i) == "kudos"  # 3 + 1 needed, 3 in hand
    assert refusal(ctx, caption_form, i) is None  # 1 + 1 needed
    with_priority = AlchemyPopContext(**{**ctx.__dict__, "priority_aliases": frozenset({broke.alias})})
    assert refusal(with_priority, interrogation_form, i) is None
    clock.advance(31)
    await ipop(client, owner, forms=[])
    assert worker.require_upfront_kudos is False


async def test_maintenance_is_403_but_the_owners_own_requests_still_come(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    await ipop(client, owner)
    horde.set_maintenance(ALCHEMIST, True, "upgrading")
    queue_alchemy(horde, requester)
    assert_error(await ipop(client, owner), 403, "WorkerMaintenance", "upgrading")
    own = queue_alchemy(horde, owner)
    _, body = await ipop(client, owner)
    assert [f["id"] for f in body["forms"]] == own.form_ids


async def test_the_maintenance_fault_applies_to_alchemists(client: Client, horde: LocalHorde, owner: User) -> None:
    horde.faults.add(endpoint="interrogate_pop", kind="maintenance", times=1)
    status, body = await ipop(client, owner)
    assert status == 403 and body["rc"] == "WorkerMaintenance"
    assert alchemist_named(horde).maintenance


async def test_slow_alchemists_only_get_requests_that_allow_slow_workers(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    await ipop(client, owner)
    alchemist_named(horde).performances.extend([12.0, 11.0])
    queue_alchemy(horde, requester, slow_workers=False)
    assert await ipop(client, owner) == (200, {"forms": None, "skipped": {}})
    allowing = queue_alchemy(horde, requester, slow_workers=True)
    assert [f["id"] for f in (await ipop(client, owner))[1]["forms"]] == allowing.form_ids


async def test_no_bridge_capability_check_for_alchemy(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester, ["4xNomos8kSC"])
    body = ipop_body(forms=["4xNomos8kSC"])
    del body["bridge_agent"]
    _, answer = await ipop(client, owner, body)
    assert answer["forms"][0]["form"] == "4xNomos8kSC"
    assert alchemist_named(horde).bridge_agent == "unknown:0:unknown"


async def test_names_are_unique_across_worker_types(client: Client, horde: LocalHorde, owner: User) -> None:
    assert (await pop(client, owner, name="shared-name"))[0] == 200
    message = (
        "The specified name 'shared-name' is already taken by a different type of worker. "
        "Please choose a different name!"
    )
    assert_error(await ipop(client, owner, name="shared-name"), 400, "PolymorphicNameConflict", message)
    assert (await ipop(client, owner, name="an-alchemist"))[0] == 200
    assert_error(await pop(client, owner, name="an-alchemist"), 400, "PolymorphicNameConflict")
    stranger = horde.add_user("stranger", trusted=True)
    assert_error(await ipop(client, stranger, name="an-alchemist"), 403, "WrongCredentials")


async def test_the_worker_record_shows_an_alchemist(client: Client, horde: LocalHorde, owner: User) -> None:
    await ipop(client, owner, forms=["caption", "nsfw", "caption"], threads=2)
    resp = await client.get(f"/api/v2/workers/name/{ALCHEMIST}")
    details = await resp.json()
    assert details["type"] == "interrogation" and details["forms"] == ["caption", "nsfw"]
    assert details["threads"] == 2 and details["performance"] == "No requests fulfilled yet"


async def test_check_in_is_debounced_for_alchemists_too(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    await ipop(client, owner, max_tiles=10)
    clock.advance(40)
    await ipop(client, owner, max_tiles=20)
    clock.advance(10)
    await ipop(client, owner, max_tiles=30)  # within 30 s of the last check-in: not stored
    assert alchemist_named(horde).max_tiles == 20
    clock.advance(21)
    await ipop(client, owner, max_tiles=30)
    assert alchemist_named(horde).max_tiles == 30


async def test_uptime_pays_40_a_tick_never_escrowed(client: Client, clock: FakeClock, horde: LocalHorde) -> None:
    untrusted = horde.add_user("untrusted", kudos=0)
    await ipop(client, untrusted)
    for _ in range(3):
        clock.advance(250)
        await ipop(client, untrusted)
    assert (untrusted.kudos, untrusted.evaluating_kudos) == (40, 0)
    assert alchemist_named(horde).kudos_uptime == 40


async def test_mangle_fault_changes_one_field_of_an_answer_with_forms(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue_alchemy(horde, requester)
    horde.faults.add(endpoint="interrogate_pop", kind="mangle", path=["forms", 0, "source_image"], value=7, times=1)
    _, body = await ipop(client, owner)
    assert body["forms"][0]["source_image"] == 7
