"""`POST /v2/generate/pop`: defaults, response shapes, auth errors, maintenance, check-in debounce."""

from __future__ import annotations

import re

from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.errors import UNRECOGNISED_MODELS_MESSAGE
from tests.localhorde.support import Client, assert_error, pop, queue

NO_JOB_PAYLOAD = {
    "ddim_steps": 30, "n_iter": 1, "image_is_control": False, "return_control_map": False, "sampler_name": "k_euler_a",
    "cfg_scale": 7.5, "height": 512, "width": 512, "karras": False, "tiling": False, "hires_fix": False,
    "transparent": False,
}  # fmt: skip
ZERO_SKIPPED = dict.fromkeys(
    ("unsafe_ip", "img2img", "painting", "post-processing", "lora", "controlnet", "worker_id", "performance", "nsfw",
     "untrusted", "models", "bridge_version"),
    0,
)  # fmt: skip


async def test_no_job_is_200_with_empty_ids_and_a_default_filled_payload(client: Client, owner: User) -> None:
    status, body = await pop(client, owner)
    assert status == 200
    assert body == {
        "payload": NO_JOB_PAYLOAD,
        "id": None,
        "ids": [],
        "messages": [],
        "ttl": None,
        "skipped": ZERO_SKIPPED,
        "model": None,
        "source_image": None,
        "source_processing": "img2img",
        "source_mask": None,
        "extra_source_images": None,
        "r2_upload": None,
        "r2_uploads": None,
    }


async def test_job_response_shape(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester, params={"n": 2, "steps": 28, "cfg_scale": 6.5, "sampler_name": "k_dpmpp_2m"})
    status, body = await pop(client, owner, amount=2)
    assert status == 200
    assert list(body) == [
        "payload", "id", "ids", "messages", "ttl", "skipped", "model", "source_image", "source_processing",
        "source_mask", "extra_source_images", "r2_upload", "r2_uploads",
    ]  # fmt: skip
    assert len(body["ids"]) == 2 and body["id"] == body["ids"][0]
    assert len(body["r2_uploads"]) == 2 and body["r2_upload"] == body["r2_uploads"][0]
    for job_id, url in zip(body["ids"], body["r2_uploads"], strict=True):
        assert f"/{job_id}.webp?" in url and "X-Amz-Expires=1800" in url and "X-Amz-Signature=" in url
    assert body["skipped"] == {} and body["messages"] == []
    assert body["model"] == "Deliberate" and body["ttl"] == 150
    assert body["source_image"] is None and body["source_processing"] == "img2img"
    payload = body["payload"]
    assert payload["n_iter"] == 2 and payload["ddim_steps"] == 28
    assert isinstance(payload["seed"], str) and payload["seed"].isdigit()
    assert payload["cfg_scale"] == 6.5 and payload["karras"] is True and payload["sampler_name"] == "k_dpmpp_2m"
    assert payload["prompt"] == "a red fox in snow"
    for never_sent in ("steps", "n", "seed_variation", "batch_size"):
        assert never_sent not in payload
    assert payload["use_nsfw_censor"] is True  # SFW request, censor_nsfw defaults on


async def test_omitted_fields_take_the_parser_defaults(client: Client, horde: LocalHorde, owner: User) -> None:
    status, _ = await pop(client, owner, body={"name": "bare", "models": ["Deliberate"]})
    assert status == 200
    worker = horde.worker("bare")
    assert worker is not None
    assert worker.nsfw is True
    assert (worker.allow_lora, worker.allow_controlnet, worker.allow_sdxl_controlnet) == (False, False, False)
    assert (worker.allow_img2img, worker.allow_painting, worker.allow_post_processing) == (True, True, True)
    assert worker.max_pixels == 262144 and worker.threads == 1
    assert worker.bridge_agent == "unknown:0:unknown"


async def test_omitted_amount_is_one(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester, params={"n": 4}, r2=False)  # r2 off: an unknown bridge can take it
    body = {"name": "bare", "models": ["Deliberate"], "max_pixels": 4194304}
    status, answer = await pop(client, owner, body=body)
    assert status == 200 and len(answer["ids"]) == 1


async def test_seed_is_a_digit_string_and_fixed_seeds_are_kept(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, params={"seed": "42"})
    queue(horde, requester, params={"seed": "the little seed"})
    _, first = await pop(client, owner)
    _, second = await pop(client, owner)
    assert first["payload"]["seed"] == "42"
    text_seed = int.from_bytes(b"the little seed", "little")
    while text_seed >= 2**32:
        text_seed >>= 32
    assert second["payload"]["seed"] == str(text_seed)


async def test_seed_variation_moves_the_seed_per_image_started(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, params={"seed": "100", "seed_variation": 5, "n": 3}, disable_batching=True)
    seeds = [(await pop(client, owner, amount=4))[1]["payload"]["seed"] for _ in range(3)]
    assert seeds == ["100", "105", "110"]


async def test_unknown_key_is_401(client: Client) -> None:
    status, body = await pop(client, "not-a-key")
    assert status == 401
    assert_error((status, body), 401, "InvalidAPIKey")


async def test_anonymous_key_is_403_anon_forbidden_worker(client: Client) -> None:
    status, body = await pop(client, "0000000000")
    assert status == 403
    assert body == {
        "message": "Anonymous user is forbidden from performing this operation",
        "rc": "AnonForbiddenWorker",
    }


async def test_name_owned_by_another_user_is_wrong_credentials(client: Client, horde: LocalHorde, owner: User) -> None:
    assert (await pop(client, owner, name="shared-name"))[0] == 200
    intruder = horde.add_user("intruder", trusted=True)
    status, body = await pop(client, intruder, name="shared-name")
    assert status == 403
    assert body == {"message": "Wrong credentials to submit as this worker.", "rc": "WrongCredentials"}


async def test_maintenance_is_403_with_its_message(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner)
    horde.set_maintenance("worker-1", True, "fix your GPU")
    status, body = await pop(client, owner)
    assert status == 403
    assert body == {"message": "fix your GPU", "rc": "WorkerMaintenance"}


async def test_maintenance_still_hands_out_the_owners_own_requests(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    await pop(client, owner)
    horde.set_maintenance("worker-1", True)
    queue(horde, requester, "someone else's")
    mine = queue(horde, owner, "my own")
    status, body = await pop(client, owner)
    assert status == 200 and body["payload"]["prompt"] == "my own"
    assert horde.state.requests[mine.id].n == 0
    status, body = await pop(client, owner)
    assert_error((status, body), 403, "WorkerMaintenance")
    assert body["message"] == "This worker has been put into maintenance mode by its owner"


async def test_invalid_priority_username(client: Client, owner: User) -> None:
    status, body = await pop(client, owner, priority_usernames=["db0"])
    assert_error((status, body), 400, "InvalidPriorityUsername")
    status, _ = await pop(client, owner, priority_usernames=["db0#1"])
    assert status == 200


async def test_unknown_models_only_is_bad_request_on_a_check_in(client: Client, owner: User) -> None:
    status, body = await pop(client, owner, models=["Not A Real Model"])
    assert status == 400
    assert body == {"message": UNRECOGNISED_MODELS_MESSAGE, "rc": "BadRequest"}


async def test_unknown_models_are_only_refused_when_the_check_in_is_not_debounced(
    client: Client, clock: FakeClock, owner: User
) -> None:
    assert (await pop(client, owner))[0] == 200
    clock.advance(40)
    assert (await pop(client, owner))[0] == 200  # a real check-in at t=40
    clock.advance(10)
    status, body = await pop(client, owner, models=["Not A Real Model"])
    assert status == 200 and body["ids"] == []  # debounced: no error, just no job
    clock.advance(21)
    status, body = await pop(client, owner, models=["Not A Real Model"])
    assert_error((status, body), 400, "BadRequest")


async def test_unknown_names_are_dropped_but_customizers_keep_them(
    client: Client, horde: LocalHorde, owner: User
) -> None:
    await pop(client, owner, models=["Deliberate", "My Own Merge"])
    assert horde.worker("worker-1").models == ["Deliberate"]  # type: ignore[union-attr]
    custom = horde.add_user("custom", trusted=True, roles=["customizer"])
    await pop(client, custom, name="custom-worker", models=["My Own Merge"])
    assert horde.worker("custom-worker").models == ["My Own Merge"]  # type: ignore[union-attr]


async def test_settings_change_lags_behind_the_30s_debounce(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    await pop(client, owner, max_pixels=1048576)
    clock.advance(40)
    await pop(client, owner, max_pixels=1048576)  # stored at t=40
    clock.advance(5)
    big = queue(horde, requester, params={"width": 1024, "height": 1024})
    status, body = await pop(client, owner, max_pixels=262144)  # debounced: still 1048576
    assert status == 200 and body["ids"]
    assert horde.worker("worker-1").max_pixels == 1048576  # type: ignore[union-attr]
    clock.advance(30)
    big.n = 1
    status, body = await pop(client, owner, max_pixels=262144)
    assert body["ids"] == [] and body["skipped"]["max_pixels"] == 1


async def test_nul_byte_in_payload(client: Client, owner: User) -> None:
    status, body = await pop(client, owner, name="bad\u0000name")
    assert_error((status, body), 400, "NulByteInPayload")


async def test_names_are_html_escaped_and_trimmed(client: Client, horde: LocalHorde, owner: User) -> None:
    await pop(client, owner, name="  Tom & Jerry  ")
    assert horde.worker("Tom &amp; Jerry") is not None


async def test_new_names_with_colab_are_refused(client: Client, owner: User) -> None:
    status, body = await pop(client, owner, name="my-Colab-box")
    assert_error((status, body), 400, "BadRequest")


async def test_untrusted_owner_worker_cap(client: Client, horde: LocalHorde) -> None:
    user = horde.add_user("small")
    for index in range(4):
        assert (await pop(client, user, name=f"w{index}"))[0] == 200
    status, body = await pop(client, user, name="w4")
    assert_error((status, body), 403, "TooManyWorkers")


async def test_flagged_owner_gets_flagged_maintenance(client: Client, horde: LocalHorde) -> None:
    flagged = horde.add_user("flagged", roles=["flagged"])
    status, body = await pop(client, flagged)
    assert_error((status, body), 403, "WorkerFlaggedMaintenance")


async def test_uptime_kudos_accrue_over_check_ins(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    before = owner.kudos
    for _ in range(21):
        await pop(client, owner, models=["Deliberate", "SDXL 1.0"], allow_lora=True)
        clock.advance(30)
    # 600 s online: 50 + 2x2 models + 30 for LoRA, all spendable for a trusted owner.
    assert owner.kudos - before == 84
    assert horde.worker("worker-1").kudos_uptime == 84  # type: ignore[union-attr]


async def test_payload_field_defaults_when_absent(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, body = await pop(client, owner)
    assert body["payload"]["tiling"] is False and body["payload"]["hires_fix"] is False
    assert "denoising_strength" not in body["payload"] and "loras" not in body["payload"]
    assert re.fullmatch(r"\d+", body["payload"]["seed"])


async def test_long_names_are_truncated_and_suspicious_for_untrusted_owners(
    client: Client, horde: LocalHorde, owner: User
) -> None:
    untrusted = horde.add_user("untrusted")
    long_name = "w" * 120
    assert (await pop(client, untrusted, name=long_name))[0] == 200
    assert (await pop(client, untrusted, name=long_name))[0] == 200  # the same worker again
    worker = horde.worker("w" * 100)
    assert worker is not None and worker.suspicion == 1
    assert len(horde.state.workers_of(untrusted)) == 1
    await pop(client, owner, name="t" * 120)
    assert horde.worker("t" * 100).suspicion == 0  # type: ignore[union-attr]


async def test_uptime_accrues_only_across_check_ins_under_300s_apart(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    await pop(client, owner)
    clock.advance(300)
    await pop(client, owner)
    worker = horde.worker("worker-1")
    assert worker is not None and worker.uptime == 0
    clock.advance(299)
    await pop(client, owner)
    assert worker.uptime == 299
