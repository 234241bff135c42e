"""Form deadlines and request expiry on the fake clock: the sweep aborts, re-queues, faults, expires."""

from __future__ import annotations

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.jobs import TOO_MANY_ABORTS_MESSAGE
from horde_worker_regen.localhorde.urls import SOURCES_BUCKET
from tests.localhorde.alchemy_support import alchemist_named, ipop, isubmit, queue_alchemy
from tests.localhorde.support import Client, assert_error


async def test_a_form_not_delivered_within_3_minutes_goes_back_to_the_queue(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    i = queue_alchemy(horde, requester)
    await ipop(client, owner)
    form = horde.state.alchemy.forms[i.form_ids[0]]
    deadline = form.expiry
    assert deadline == clock.now() + 180
    clock.advance(180)
    assert horde.sweep().aborted_forms == []  # due, not yet past
    clock.advance(1)
    assert horde.sweep().aborted_forms == [form.id]
    assert (form.state, form.abort_count) == (FormState.WAITING, 1) and form.expiry is None
    worker = alchemist_named(horde)
    assert (worker.aborted_jobs, worker.uncompleted_jobs) == (1, 1)
    assert_error(await isubmit(client, owner, form.id), 400, "DuplicateGen")  # too late
    assert horde.sweep().aborted_forms == []  # aborted once only
    _, again = await ipop(client, owner, name="alchemist-2")
    assert again["forms"][0]["id"] == form.id


async def test_the_fourth_abort_faults_the_form(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    i = queue_alchemy(horde, requester)
    form = horde.state.alchemy.forms[i.form_ids[0]]
    states = []
    for _ in range(4):
        _, body = await ipop(client, owner)
        assert body["forms"][0]["id"] == form.id
        clock.advance(181)
        horde.sweep()
        states.append(form.state)
    assert states == [FormState.WAITING] * 3 + [FormState.FAULTED]
    assert (await ipop(client, owner))[1]["forms"] is None
    status = await (await client.get(f"/api/v2/interrogate/status/{i.id}")).json()
    assert status == {"state": "faulted", "forms": [{"form": "caption", "state": "faulted", "result": {}}]}


async def test_more_than_20_aborts_in_an_hour_put_the_alchemist_into_maintenance(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    for _ in range(7):
        queue_alchemy(horde, requester, ["caption", "nsfw", "interrogation"])
    _, body = await ipop(client, owner, amount=20)
    assert len(body["forms"]) == 20
    clock.advance(181)
    assert len(horde.sweep().aborted_forms) == 20
    assert not alchemist_named(horde).maintenance
    _, body = await ipop(client, owner)
    clock.advance(181)
    horde.sweep()
    worker = alchemist_named(horde)
    assert worker.maintenance and worker.aborted_jobs == 0
    assert_error(await ipop(client, owner), 403, "WorkerMaintenance", TOO_MANY_ABORTS_MESSAGE)


async def test_faulted_submits_count_toward_the_hourly_aborts(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    for _ in range(21):
        i = queue_alchemy(horde, requester)
        _, body = await ipop(client, owner)
        assert body["forms"][0]["id"] == i.form_ids[0]
        assert await isubmit(client, owner, i.form_ids[0], {}, state="faulted") == (200, {"reward": 0.0})
        horde.state.alchemy.delete(i)
    assert alchemist_named(horde).maintenance is True


async def test_the_abort_window_resets_after_an_hour(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    for _ in range(15):
        queue_alchemy(horde, requester, ["caption"])
    await ipop(client, owner, amount=15)
    clock.advance(181)
    horde.sweep()
    clock.advance(3600)
    await ipop(client, owner, amount=15)  # the same forms, re-queued once each
    clock.advance(181)
    assert len(horde.sweep().aborted_forms) == 15
    assert not alchemist_named(horde).maintenance


async def test_requests_expire_20_minutes_after_creation_or_their_last_pop(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    idle = queue_alchemy(horde, requester, ["caption"])
    popped = queue_alchemy(horde, requester, ["nsfw"])
    clock.advance(600)
    await ipop(client, owner, forms=["nsfw"])
    clock.advance(601)
    report = horde.sweep()
    assert report.expired_interrogations == [idle.id] and report.aborted_forms == popped.form_ids
    assert horde.state.objects.get(SOURCES_BUCKET, f"{idle.id}.webp") is None
    resp = await client.get(f"/api/v2/interrogate/status/{idle.id}")
    assert (resp.status, (await resp.json())["rc"]) == (404, "RequestNotFound")
    clock.advance(600)
    assert horde.sweep().expired_interrogations == [popped.id]
    assert_error(await isubmit(client, owner, popped.form_ids[0]), 404, "InvalidJobID")
