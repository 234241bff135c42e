"""`POST /v2/interrogate/submit`: outcomes, kudos as the server computes them, R2 uploads and links."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import SubmitAttempt, User
from horde_worker_regen.localhorde.kudos import form_charge, form_value
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from tests.localhorde.alchemy_support import (
    ALCHEMIST,
    alchemist_named,
    ipop,
    isubmit,
    queue_alchemy,
    upload,
)
from tests.localhorde.support import WEBP_BYTES, Client, assert_error, path_of

VALIDATION = "Input payload validation failed"


async def pop_one(
    client: Client, horde: LocalHorde, owner: User, requester: User, form: str = "caption", **request: Any
) -> dict[str, Any]:
    queue_alchemy(horde, requester, [form], **request)
    status, body = await ipop(client, owner, forms=[form], max_tiles=256)
    assert status == 200 and body["forms"], body
    return body["forms"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("form", "size", "value"),
    [
        ("caption", (64, 64), 1.0),
        ("nsfw", (2048, 2048), 1.0),
        ("interrogation", (2048, 2048), 3.0),
        ("GFPGAN", (512, 512), 3.0),
        ("RealESRGAN_x4plus", (1024, 1024), 12.0),
        ("strip_background", (600, 600), 12.0),
        ("4xNomos2_hq_dat2", (1536, 1024), 18.0),
    ],
)
async def test_reward_and_kudos_as_the_server_computes_them(
    *, client: Client, horde: LocalHorde, owner: User, requester: User, form: str, size: tuple[int, int], value: float
) -> None:
    entry = await pop_one(client, horde, owner, requester, form, size=size)
    result: dict[str, Any] = {form: "a caption"}
    if "r2_upload" in entry:
        assert await upload(client, entry["r2_upload"], WEBP_BYTES) == 200
        result = {form: "R2"}
    assert await isubmit(client, owner, entry["id"], result) == (200, {"reward": value})
    assert owner.kudos == pytest.approx(100 + value)  # trusted: all spendable, no bridge factor
    assert requester.kudos == pytest.approx(5000 - value - 2)  # + 2: slow_workers is on by default
    worker = alchemist_named(horde)
    assert (worker.kudos_generated, worker.fulfilments, worker.forms_done) == (value, 1, {form: 1})


def test_form_values_and_charges() -> None:
    assert form_value("interrogation", post_processor=False, tiles=50) == 3
    assert form_value("caption", post_processor=False, tiles=50) == 1
    assert form_value("strip_background", post_processor=True, tiles=7) == 21
    assert (form_charge(3, slow_workers=False), form_charge(3, slow_workers=True)) == (4, 5)


async def test_requesters_without_slow_workers_pay_one_less(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester, "interrogation", slow_workers=False)
    await isubmit(client, owner, entry["id"], {"interrogation": {"tags": []}})
    assert requester.kudos == pytest.approx(5000 - 4)
    assert requester.forms_requested == 1 and owner.forms_fulfilled == 1


async def test_untrusted_owners_get_half_in_escrow(client: Client, horde: LocalHorde, requester: User) -> None:
    untrusted = horde.add_user("untrusted", kudos=0)
    entry = await pop_one(client, horde, untrusted, requester, "interrogation")
    assert await isubmit(client, untrusted, entry["id"], {"interrogation": {}}) == (200, {"reward": 3.0})
    assert (untrusted.kudos, untrusted.evaluating_kudos) == (1.5, 1.5)


async def test_requesters_are_not_asked_for_kudos_up_front(client: Client, horde: LocalHorde, owner: User) -> None:
    broke = horde.add_user("broke", kudos=0)
    entry = await pop_one(client, horde, owner, broke, "nsfw")
    await isubmit(client, owner, entry["id"], {"nsfw": False})
    assert broke.kudos == -3


async def test_faulted_requeues_pays_nothing_and_counts_an_abort(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    assert await isubmit(client, owner, entry["id"], {}, state="faulted") == (200, {"reward": 0.0})
    form = horde.state.alchemy.forms[entry["id"]]
    assert (form.state, form.abort_count, form.result) == (FormState.WAITING, 1, None)
    worker = alchemist_named(horde)
    assert (worker.aborted_jobs, worker.uncompleted_jobs) == (1, 1)
    assert (owner.kudos, requester.kudos) == (100, 5000)
    _, again = await ipop(client, owner, forms=["caption"])
    assert again["forms"][0]["id"] == entry["id"]


async def test_duplicates_and_late_submits_are_duplicate_gen(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    assert (await isubmit(client, owner, entry["id"]))[0] == 200
    message = f"Processing Generation with ID {entry['id']} already submitted."
    assert_error(await isubmit(client, owner, entry["id"]), 400, "DuplicateGen", message)
    assert_error(await isubmit(client, owner, entry["id"], state="faulted"), 400, "DuplicateGen")
    horde.set_maintenance(ALCHEMIST, True)
    assert await isubmit(client, owner, entry["id"]) == (200, {"reward": 0})
    assert owner.kudos == 101  # paid once
    assert horde.state.submit_attempts[entry["id"]] == [
        SubmitAttempt("ok", applied=True), SubmitAttempt("ok", applied=False),
        SubmitAttempt("faulted", applied=False), SubmitAttempt("ok", applied=False),
    ]  # fmt: skip


async def test_unknown_id_wrong_owner_and_unknown_key(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    missing = "00000000-0000-0000-0000-000000000000"
    message = f"Processing Job with ID {missing} does not exist."
    assert_error(await isubmit(client, owner, missing), 404, "InvalidJobID", message)
    stranger = horde.add_user("stranger", trusted=True)
    assert_error(await isubmit(client, stranger, entry["id"]), 403, "WrongCredentials")
    resp = await client.post(
        "/api/v2/interrogate/submit", json={"id": entry["id"], "result": {}}, headers={"apikey": "not a key"}
    )
    assert resp.status == 500  # the server's bug, reproduced as for image submits
    assert horde.state.alchemy.forms[entry["id"]].state is FormState.PROCESSING


async def test_a_form_never_popped_cannot_be_submitted(client: Client, horde: LocalHorde, owner: User) -> None:
    i = queue_alchemy(horde, owner)
    assert_error(await isubmit(client, owner, i.form_ids[0]), 403, "WrongCredentials")


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"id": "x", "result": "a caption"},
            {
                "result": "The completed interrogation form results dictionary update sequence element #0 has "
                "length 1; 2 is required"
            },
        ),
        ({"id": "x", "result": 5}, {"result": "The completed interrogation form results 'int' object is not iterable"}),
        (
            {"id": "x"},
            {"result": "The completed interrogation form results Missing required parameter in the JSON body"},
        ),
        (
            {"id": "x", "result": None},
            {"result": "The completed interrogation form results Missing required parameter in the JSON body"},
        ),
        ({"result": {}}, {"id": "The processing generation uuid Missing required parameter in the JSON body"}),
    ],
)
async def test_submit_body_errors(client: Client, owner: User, body: dict[str, Any], errors: dict[str, str]) -> None:
    resp = await client.post("/api/v2/interrogate/submit", json=body, headers={"apikey": owner.api_key})
    assert (resp.status, await resp.json()) == (400, {"errors": errors, "message": VALIDATION})


async def test_result_goes_through_dict_as_reqparse_does(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    assert (await isubmit(client, owner, entry["id"], [["caption", "pairs"]]))[0] == 200
    assert horde.state.alchemy.forms[entry["id"]].result == {"caption": "pairs"}


async def test_any_state_but_faulted_is_delivered(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    assert await isubmit(client, owner, entry["id"], state="censored") == (200, {"reward": 1.0})


async def test_r2_is_replaced_by_the_uploaded_images_url(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester, "RealESRGAN_x2plus")
    assert await upload(client, entry["r2_upload"], WEBP_BYTES) == 200
    assert (await isubmit(client, owner, entry["id"], {"RealESRGAN_x2plus": "R2", "note": "kept"}))[0] == 200
    result = horde.state.alchemy.forms[entry["id"]].result
    assert result is not None and result["note"] == "kept"
    link = result["RealESRGAN_x2plus"]
    assert path_of(link).startswith(f"/r2/{GENERATIONS_BUCKET}/{entry['id']}.webp?")
    fetched = await client.get(path_of(link))
    assert fetched.status == 200 and await fetched.read() == WEBP_BYTES


async def test_r2_without_an_uploaded_webp_is_refused_and_the_form_stays_in_progress(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester, "strip_background")
    assert_error(await isubmit(client, owner, entry["id"], {"strip_background": "R2"}), 400, "R2UploadMissing")
    assert await upload(client, entry["r2_upload"], b"\x89PNG\r\n\x1a\n not a webp") == 200
    assert_error(await isubmit(client, owner, entry["id"], {"strip_background": "R2"}), 400, "R2UploadMissing")
    assert horde.state.alchemy.forms[entry["id"]].state is FormState.PROCESSING and owner.kudos == 100
    assert await upload(client, entry["r2_upload"], WEBP_BYTES) == 200
    assert await isubmit(client, owner, entry["id"], {"strip_background": "R2"}) == (200, {"reward": 3.0})


async def test_a_cancelled_form_cannot_be_delivered(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    entry = await pop_one(client, horde, owner, requester)
    i_id = horde.state.alchemy.forms[entry["id"]].i_id
    resp = await client.delete(f"/api/v2/interrogate/status/{i_id}")
    assert (await resp.json())["forms"][0]["state"] == "cancelled"
    assert_error(await isubmit(client, owner, entry["id"]), 400, "DuplicateGen")
    assert (owner.kudos, requester.kudos) == (100, 5000)
