"""The sweep: ttl aborts and re-queue, the hourly abort window, automatic maintenance, expiry."""

from __future__ import annotations

from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.jobs import TOO_MANY_ABORTS_MESSAGE
from tests.localhorde.support import Client, assert_error, pop, queue, submit, worker_named


async def test_jobs_past_their_ttl_are_aborted_and_requeued(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, params={"n": 2})
    _, job = await pop(client, owner, amount=2)
    assert wp.n == 0 and job["ttl"] == 150
    clock.advance(150)
    assert horde.sweep().aborted == []  # not older than ttl yet
    clock.advance(1)
    assert sorted(horde.sweep().aborted) == sorted(job["ids"])
    assert wp.n == 2
    assert horde.worker("worker-1").uncompleted_jobs == 2  # type: ignore[union-attr]
    assert horde.sweep().aborted == []  # aborted once only
    _, again = await pop(client, owner, name="another", amount=2)
    assert len(again["ids"]) == 2


async def test_finished_jobs_are_never_aborted(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, job = await pop(client, owner)
    await submit(client, owner, job["ids"][0])
    clock.advance(1000)
    assert horde.sweep().aborted == []


async def abort_many(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User, *, count: int
) -> None:
    """Pop `count` jobs and let them all time out."""
    for start in range(0, count, 20):
        queue(horde, requester, params={"n": min(20, count - start)}, disable_batching=True)
    for _ in range(count):
        status, body = await pop(client, owner)
        assert status == 200 and body["ids"]
    clock.advance(151)
    assert len(horde.sweep().aborted) == count


async def test_more_than_20_aborts_in_an_hour_means_maintenance(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    await abort_many(client, clock, horde, owner, requester, count=20)
    assert not worker_named(horde).maintenance
    await abort_many(client, clock, horde, owner, requester, count=1)
    worker = worker_named(horde)
    assert worker.maintenance and worker.aborted_jobs == 0
    status, body = await pop(client, owner)
    assert status == 403
    assert body == {"message": TOO_MANY_ABORTS_MESSAGE, "rc": "WorkerMaintenance"}


async def test_faulted_submits_count_toward_the_hourly_aborts(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    for _ in range(21):
        queue(horde, requester)
        _, job = await pop(client, owner)
        assert (await submit(client, owner, job["ids"][0], state="faulted"))[0] == 200
    assert horde.worker("worker-1").maintenance is True  # type: ignore[union-attr]


async def test_the_abort_window_resets_after_an_hour(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    await abort_many(client, clock, horde, owner, requester, count=15)
    clock.advance(3600)
    await abort_many(client, clock, horde, owner, requester, count=15)
    worker = horde.worker("worker-1")
    assert worker is not None and worker.maintenance is False and worker.aborted_jobs == 15
    assert worker.uncompleted_jobs == 30


async def test_put_maintenance_false_clears_it(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    await abort_many(client, clock, horde, owner, requester, count=21)
    worker = horde.worker("worker-1")
    assert worker is not None
    resp = await client.put(
        f"/api/v2/workers/{worker.id}", json={"maintenance": False}, headers={"apikey": owner.api_key}
    )
    assert (resp.status, await resp.json()) == (200, {"maintenance": False})
    queue(horde, requester)
    status, body = await pop(client, owner)
    assert status == 200 and len(body["ids"]) == 1


async def test_requests_expire_20_minutes_after_creation(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester)
    clock.advance(1199)
    assert horde.sweep().expired == []
    clock.advance(1)
    assert horde.sweep().expired == [wp.id]
    resp = await client.get(f"/api/v2/generate/check/{wp.id}")
    assert resp.status == 404
    assert await resp.json() == {"message": f"Waiting Prompt with ID '{wp.id}' not found.", "rc": "RequestNotFound"}


async def test_a_pop_refreshes_the_expiry(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, params={"n": 2}, disable_batching=True)
    clock.advance(1000)
    await pop(client, owner)
    clock.advance(1000)  # 2000 s after creation, 1000 s after the pop
    assert horde.sweep().expired == []
    assert wp.id in horde.state.requests


async def test_expired_requests_are_not_offered_even_before_the_sweep(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    clock.advance(1201)
    _, body = await pop(client, owner)
    assert body["ids"] == []


async def test_an_extra_slow_pop_keeps_the_request_for_60_minutes(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, extra_slow_workers=True)
    _, job = await pop(client, owner, extra_slow_worker=True)
    assert job["ttl"] == 450
    clock.advance(20 * 60 + 1)
    report = horde.sweep()
    assert report.expired == [] and report.aborted == job["ids"]
    clock.advance(40 * 60)
    assert horde.sweep().expired == [wp.id]
    job_id = job["ids"][0]
    assert_error(
        await submit(client, owner, job_id), 404, "InvalidJobID", f"Processing Job with ID {job_id} does not exist."
    )


async def test_submit_within_the_ttl_after_an_extra_slow_pop_is_rewarded(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, extra_slow_workers=True)
    _, job = await pop(client, owner, extra_slow_worker=True)
    clock.advance(449)
    assert horde.sweep().aborted == []
    assert await submit(client, owner, job["ids"][0]) == (200, {"reward": 6.5})
