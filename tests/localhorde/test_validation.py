"""Validation failures in flask-restx's exact shape: 400, `errors`, the fixed message, no `rc`."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.entities import User
from tests.localhorde.support import Client, pop_body

MESSAGE = "Input payload validation failed"


async def post(client: Client, path: str, body: Any, key: str | None) -> tuple[int, Any]:
    headers = {"apikey": key} if key is not None else {}
    resp = await client.post(path, json=body, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"amount": 25}, {"amount": "25 is greater than the maximum of 20"}),
        ({"amount": 0}, {"amount": "0 is less than the minimum of 1"}),
        ({"threads": 0}, {"threads": "0 is less than the minimum of 1"}),
        ({"threads": 51}, {"threads": "51 is greater than the maximum of 50"}),
        ({"models": ["ab"]}, {"models.0": "'ab' is too short"}),
        ({"models": ["Deliberate", "x" * 256]}, {"models.1": f"'{'x' * 256}' is too long"}),
        ({"amount": "4"}, {"amount": "'4' is not of type 'integer'"}),
        ({"amount": 2.0}, {"amount": "2.0 is not of type 'integer'"}),
        ({"nsfw": None}, {"nsfw": "None is not of type 'boolean'"}),
        ({"nsfw": "yes"}, {"nsfw": "'yes' is not of type 'boolean'"}),
        ({"max_pixels": True}, {"max_pixels": "True is not of type 'integer'"}),
        ({"models": "Deliberate"}, {"models": "'Deliberate' is not of type 'array'"}),
        ({"bridge_agent": "x" * 1001}, {"bridge_agent": f"'{'x' * 1001}' is too long"}),
        (
            {"amount": 30, "threads": 0},
            {"amount": "30 is greater than the maximum of 20", "threads": "0 is less than the minimum of 1"},
        ),
    ],
)
async def test_pop_schema_errors(
    client: Client, owner: User, overrides: dict[str, Any], errors: dict[str, str]
) -> None:
    status, body = await post(client, "/api/v2/generate/pop", pop_body(**overrides), owner.api_key)
    assert status == 400
    assert body == {"errors": errors, "message": MESSAGE}


async def test_pop_without_name_fails_in_reqparse(client: Client, owner: User) -> None:
    body = pop_body()
    del body["name"]
    status, answer = await post(client, "/api/v2/generate/pop", body, owner.api_key)
    assert status == 400
    assert answer == {
        "errors": {
            "name": "The worker's unique name, to track contributions. Missing required parameter in the JSON body"
        },
        "message": MESSAGE,
    }


async def test_pop_without_apikey_fails_before_the_name(client: Client) -> None:
    body = pop_body()
    del body["name"]
    status, answer = await post(client, "/api/v2/generate/pop", body, None)
    assert status == 400
    assert answer == {
        "errors": {
            "apikey": "The API Key corresponding to a registered user. Missing required parameter in the HTTP headers"
        },
        "message": MESSAGE,
    }


async def test_schema_errors_come_before_reqparse(client: Client) -> None:
    status, answer = await post(client, "/api/v2/generate/pop", {"amount": 99}, None)
    assert status == 400
    assert answer == {"errors": {"amount": "99 is greater than the maximum of 20"}, "message": MESSAGE}


async def test_body_that_is_not_an_object(client: Client, owner: User) -> None:
    status, answer = await post(client, "/api/v2/generate/pop", ["name"], owner.api_key)
    assert status == 400
    assert answer == {"errors": {"": "['name'] is not of type 'object'"}, "message": MESSAGE}


async def test_malformed_json_is_a_bare_400(client: Client, owner: User) -> None:
    resp = await client.post("/api/v2/generate/pop", data=b"{not json", headers={"apikey": owner.api_key})
    assert resp.status == 400
    body = await resp.json()
    assert set(body) == {"message"}


SUBMIT_OK = {"id": "00000000-0000-0000-0000-000000000000", "generation": "R2", "state": "ok", "seed": 1}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"seed": "123"}, {"seed": "'123' is not of type 'integer'"}),
        ({"seed": None}, {"seed": "None is not of type 'integer'"}),
        ({"state": "bogus"}, {"state": "'bogus' is not one of ['ok', 'censored', 'faulted', 'csam']"}),
        ({"id": 5}, {"id": "5 is not of type 'string'"}),
        (
            {"gen_metadata": [{"type": "nope", "value": "nsfw"}]},
            {
                "gen_metadata.0.type": "'nope' is not one of ['lora', 'ti', 'censorship', 'source_image', "
                "'source_mask', 'extra_source_images', 'batch_index', 'information', 'aesthetic_score']"
            },
        ),
        ({"gen_metadata": [{"type": "lora"}]}, {"gen_metadata.0.value": "'value' is a required property"}),
        (
            {"gen_metadata": [{"type": "lora", "value": "see_ref", "ref": "r" * 256}]},
            {"gen_metadata.0.ref": f"'{'r' * 256}' is too long"},
        ),
    ],
)
async def test_submit_schema_errors(
    client: Client, owner: User, change: dict[str, Any], errors: dict[str, str]
) -> None:
    status, body = await post(client, "/api/v2/generate/submit", {**SUBMIT_OK, **change}, owner.api_key)
    assert status == 400
    assert body == {"errors": errors, "message": MESSAGE}


async def test_submit_missing_seed_is_a_schema_error(client: Client, owner: User) -> None:
    body = {k: v for k, v in SUBMIT_OK.items() if k != "seed"}
    status, answer = await post(client, "/api/v2/generate/submit", body, owner.api_key)
    assert (status, answer) == (400, {"errors": {"seed": "'seed' is a required property"}, "message": MESSAGE})


async def test_submit_missing_generation_is_a_reqparse_error(client: Client, owner: User) -> None:
    body = {k: v for k, v in SUBMIT_OK.items() if k != "generation"}
    status, answer = await post(client, "/api/v2/generate/submit", body, owner.api_key)
    assert status == 400
    assert answer == {
        "errors": {"generation": "The generated output. Missing required parameter in the JSON body"},
        "message": MESSAGE,
    }


async def test_async_size_must_be_a_multiple_of_64(client: Client, owner: User) -> None:
    body = {"prompt": "x", "params": {"width": 500, "steps": 0}}
    status, answer = await post(client, "/api/v2/generate/async", body, owner.api_key)
    assert status == 400
    assert answer == {
        "errors": {"params.width": "500 is not a multiple of 64", "params.steps": "0 is less than the minimum of 1"},
        "message": MESSAGE,
    }


async def test_async_prompt_required_and_non_empty(client: Client, owner: User) -> None:
    status, answer = await post(client, "/api/v2/generate/async", {"prompt": ""}, owner.api_key)
    assert (status, answer) == (400, {"errors": {"prompt": "'' should be non-empty"}, "message": MESSAGE})
    status, answer = await post(client, "/api/v2/generate/async", {}, owner.api_key)
    assert (status, answer) == (400, {"errors": {"prompt": "'prompt' is a required property"}, "message": MESSAGE})
