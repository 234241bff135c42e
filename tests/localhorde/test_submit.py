"""`POST /v2/generate/submit`: compare-and-set outcomes (§3.7), rewards (§4), R2 vs base64, known bugs."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import SubmitAttempt, User
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from tests.localhorde.support import WEBP_B64, WEBP_BYTES, Client, assert_error, pop, queue, submit


async def pop_one(client: Client, horde: LocalHorde, owner: User, requester: User, **request: Any) -> dict[str, Any]:
    queue(horde, requester, **request)
    status, body = await pop(client, owner, models=request.get("models", ["Deliberate"]), max_pixels=4194304)
    assert status == 200 and body["ids"], body
    return body  # type: ignore[no-any-return]


async def test_ok_submit_returns_the_reward(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await pop_one(client, horde, owner, requester)
    status, body = await submit(client, owner, job["ids"][0], seed=int(job["payload"]["seed"]))
    assert (status, body) == (200, {"reward": 6.5})


@pytest.mark.parametrize(
    ("request_fields", "reward"),
    [
        ({"models": ["SDXL 1.0"], "params": {"width": 1024, "height": 1024, "steps": 25}}, 60.06),
        ({"models": ["Flux.1-Schnell fp8 (Compact)"], "params": {"width": 1024, "height": 1024, "steps": 4}}, 38.4),
        ({"models": ["Stable Cascade 1.0"], "params": {"hires_fix": True}}, 45.5),
        ({"params": {"loras": [{"name": "1"}, {"name": "2"}]}}, 12.5),
        ({"params": {"tis": [{"name": "7808"}]}}, 7.5),
        ({"params": {"post_processing": ["GFPGAN"]}}, 7.8),
        ({"models": ["Some Finetune [SDXL]"]}, 13.0),
    ],
)
async def test_rewards_use_the_legacy_formula_bonuses_and_baseline_multiplier(
    client: Client, horde: LocalHorde, requester: User, request_fields: dict[str, Any], reward: float
) -> None:
    custom = horde.add_user("custom", trusted=True, roles=["customizer"])
    job = await pop_one(client, horde, custom, requester, **request_fields)
    status, body = await submit(client, custom, job["ids"][0])
    assert (status, body) == (200, {"reward": reward})


async def test_reward_is_credited_with_the_bridge_multiplier(
    client: Client, horde: LocalHorde, requester: User
) -> None:
    trusted = horde.add_user("trusted", trusted=True, kudos=0)
    untrusted = horde.add_user("untrusted", kudos=0)
    queue(horde, requester, params={"n": 2})
    _, old_bridge = await pop(client, trusted, bridge_agent="AI Horde Worker reGen:10.1.1:x")
    _, latest = await pop(client, untrusted, name="worker-2")
    await submit(client, trusted, old_bridge["ids"][0])
    await submit(client, untrusted, latest["ids"][0])
    assert trusted.kudos == pytest.approx(6.5 * 0.9)
    assert (untrusted.kudos, untrusted.evaluating_kudos) == pytest.approx((3.25, 3.25))
    assert requester.kudos == pytest.approx(5000 - 13)


async def test_censored_results_pay_the_worker_but_not_charge_the_requester(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    status, body = await submit(client, owner, job["ids"][0], gen_metadata=[{"type": "censorship", "value": "nsfw"}])
    assert (status, body) == (200, {"reward": 6.5})
    assert owner.kudos == pytest.approx(106.5)
    assert requester.kudos == 5000
    assert horde.state.generations[job["ids"][0]].censored is True


async def test_duplicate_submit(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await pop_one(client, horde, owner, requester)
    job_id = job["ids"][0]
    assert (await submit(client, owner, job_id))[0] == 200
    status, body = await submit(client, owner, job_id)
    assert status == 400
    assert body == {"message": f"Processing Generation with ID {job_id} already submitted.", "rc": "DuplicateGen"}


async def test_every_submit_received_is_recorded_refused_ones_too(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    job_id = job["ids"][0]
    stranger = horde.state.add_user("stranger")
    assert_error(await submit(client, stranger, job_id), 403, "WrongCredentials")
    assert (await submit(client, owner, job_id))[0] == 200
    assert_error(await submit(client, owner, job_id), 400, "DuplicateGen")
    await submit(client, owner, job_id, state="faulted")
    assert horde.state.submit_attempts[job_id] == [
        SubmitAttempt("ok", applied=False), SubmitAttempt("ok", applied=True),
        SubmitAttempt("ok", applied=False), SubmitAttempt("faulted", applied=False),
    ]  # fmt: skip
    assert owner.kudos == pytest.approx(106.5)  # paid once


async def test_duplicate_submit_in_maintenance_is_200_reward_zero(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    await submit(client, owner, job["ids"][0])
    horde.set_maintenance("worker-1", True)
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 0})


async def test_submit_after_the_ttl_sweep_is_aborted_gen(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    clock.advance(job["ttl"] + 1)
    assert horde.sweep().aborted == job["ids"]
    job_id = job["ids"][0]
    status, body = await submit(client, owner, job_id)
    assert status == 400
    assert body == {
        "message": f"Processing Generation with ID {job_id} took too long to process and has been aborted! "
        "Please check your worker speed and do not onboard worker which generate slower than 1 it/s!",
        "rc": "AbortedGen",
    }


async def test_faulted_submit_returns_zero_requeues_and_counts_an_abort(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    wp = horde.state.requests[horde.state.generations[job["ids"][0]].wp_id]
    assert wp.n == 0
    status, body = await submit(client, owner, job["ids"][0], generation="Faulted", state="faulted")
    assert (status, body) == (200, {"reward": 0})
    assert wp.n == 1
    assert horde.worker("worker-1").uncompleted_jobs == 1  # type: ignore[union-attr]
    assert owner.kudos == 100


async def test_known_bug_repeated_faulted_submit_requeues_twice(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    """Known server bug, reproduced: a second `faulted` submit for one id re-queues the image again.

    The worker must submit `faulted` at most once per id; this test pins the server's behaviour.
    """
    job = await pop_one(client, horde, owner, requester)
    wp = horde.state.requests[horde.state.generations[job["ids"][0]].wp_id]
    for _ in range(2):
        assert await submit(client, owner, job["ids"][0], generation="Faulted", state="faulted") == (200, {"reward": 0})
    assert wp.n == 2  # one image requested, two queued
    assert horde.worker("worker-1").uncompleted_jobs == 1  # type: ignore[union-attr]


async def test_ok_after_faulted_is_aborted_gen(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    job = await pop_one(client, horde, owner, requester)
    await submit(client, owner, job["ids"][0], state="faulted")
    status, body = await submit(client, owner, job["ids"][0])
    assert_error((status, body), 400, "AbortedGen")


@pytest.mark.parametrize("job_id", ["3064d17b-7b2b-406b-8883-61e77ef95b25", "not-a-uuid"])
async def test_unknown_id_is_invalid_job_id(client: Client, owner: User, job_id: str) -> None:
    status, body = await submit(client, owner, job_id)
    assert status == 404
    assert body == {"message": f"Processing Job with ID {job_id} does not exist.", "rc": "InvalidJobID"}


async def test_known_bug_unknown_key_on_submit_is_500(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    """Known server bug, reproduced: submit with an unknown API key answers 500 Internal Server Error.

    `JobSubmitTemplate.validate` reads a `name` argument the submit parser does not define, so the
    intended 401 becomes a KeyError. The worker must not retry a submit endlessly on 500.
    """
    job = await pop_one(client, horde, owner, requester)
    assert await submit(client, "not-a-key", job["ids"][0]) == (500, {"message": "Internal Server Error"})
    assert horde.state.generations[job["ids"][0]].is_completed is False


async def test_another_users_key_is_wrong_credentials(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    status, body = await submit(client, requester, job["ids"][0])
    assert status == 403
    assert body == {"message": "Wrong credentials to submit as this worker.", "rc": "WrongCredentials"}


async def test_base64_generation_is_stored_by_the_server(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    assert (await submit(client, owner, job["ids"][0], generation=WEBP_B64))[0] == 200
    stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{job['ids'][0]}.webp")
    assert stored is not None and stored.data == WEBP_BYTES
    assert horde.state.generations[job["ids"][0]].generation == "R2"


async def test_r2_is_trusted_without_checking_the_upload(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    assert await submit(client, owner, job["ids"][0], generation="R2") == (200, {"reward": 6.5})
    assert horde.state.objects.get(GENERATIONS_BUCKET, f"{job['ids'][0]}.webp") is None


async def test_more_than_50_gen_metadata_is_400_after_storing_and_rewarding(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    metadata = [{"type": "information", "value": "see_ref", "ref": str(i)} for i in range(51)]
    status, body = await submit(client, owner, job["ids"][0], gen_metadata=metadata)
    assert_error((status, body), 400, "BadRequest")
    assert horde.state.generations[job["ids"][0]].is_completed
    assert owner.kudos == pytest.approx(106.5)
    assert_error(await submit(client, owner, job["ids"][0]), 400, "DuplicateGen")


async def test_fifty_gen_metadata_entries_are_fine(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    metadata = [{"type": "batch_index", "value": "see_ref", "ref": "0"}] * 50
    assert (await submit(client, owner, job["ids"][0], gen_metadata=metadata))[0] == 200


async def test_submit_after_request_expiry_is_invalid_job_id(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    job = await pop_one(client, horde, owner, requester)
    clock.advance(20 * 60 + 1)
    report = horde.sweep()
    assert report.expired and report.aborted == job["ids"]
    status, body = await submit(client, owner, job["ids"][0])
    assert_error((status, body), 404, "InvalidJobID", f"Processing Job with ID {job['ids'][0]} does not exist.")


async def test_each_id_of_a_batch_is_submitted_separately(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, params={"n": 3})
    _, job = await pop(client, owner, amount=3)
    rewards = [(await submit(client, owner, job_id, seed=7))[1]["reward"] for job_id in job["ids"]]
    assert rewards == [6.5, 6.5, 6.5]
    assert all(horde.state.generations[job_id].seed == 7 for job_id in job["ids"])


async def test_unreasonably_fast_untrusted_workers_end_up_paused(
    client: Client, horde: LocalHorde, requester: User
) -> None:
    """Five images faster than 20 MPS/s each pause an untrusted worker: later jobs are fakes."""
    untrusted = horde.add_user("speedy")
    queue(horde, requester, params={"n": 6}, disable_batching=True)
    for _ in range(5):
        _, job = await pop(client, untrusted)
        await submit(client, untrusted, job["ids"][0])  # the fake clock has not moved: infinitely fast
    worker = horde.worker("worker-1")
    assert worker is not None and worker.paused and worker.suspicion == 5
    credited = untrusted.kudos + untrusted.evaluating_kudos
    _, job = await pop(client, untrusted)
    assert await submit(client, untrusted, job["ids"][0]) == (200, {"reward": 6.5})
    assert untrusted.kudos + untrusted.evaluating_kudos == credited


async def test_suspicion_can_be_switched_off(client: Client, horde: LocalHorde, requester: User) -> None:
    horde.state.detect_suspicion = False
    untrusted = horde.add_user("speedy")
    queue(horde, requester, params={"n": 6}, disable_batching=True)
    for _ in range(6):
        _, job = await pop(client, untrusted)
        await submit(client, untrusted, job["ids"][0])
    assert horde.worker("worker-1").suspicion == 0  # type: ignore[union-attr]
    assert untrusted.kudos == pytest.approx(6 * 6.5 / 2)
