"""The horde's version and this worker's id, read from the local horde; a failed reading keeps what was known."""

from __future__ import annotations

from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.localhorde.workers import SERVER_VERSION
from tests.jobs.conftest import HordeSession


async def test_the_version_is_read_at_once_and_the_id_once_the_horde_knows_the_worker(
    horde_session: HordeSession,
) -> None:
    watch = HordeIdentityWatch(horde_session.client, "Unit Dreamer")
    await watch.read()
    assert (watch.horde_version, watch.worker_id) == (SERVER_VERSION, None)  # its first pop creates the worker
    await horde_session.pop_record("a lake")
    await watch.read()
    known = [w.id for w in horde_session.horde.state.workers.values() if w.name == "Unit Dreamer"]
    assert len(known) == 1 and [watch.worker_id] == known


async def test_a_horde_that_fails_to_answer_leaves_the_last_reading(horde_session: HordeSession) -> None:
    watch = HordeIdentityWatch(horde_session.client, "Unit Dreamer")
    horde_session.horde.faults.add(endpoint="heartbeat", kind="error", status=502, times=1)
    await watch.read()
    assert [watch.horde_version] == [None]  # never read: unknown, and nothing raised
    await watch.read()
    assert watch.horde_version == SERVER_VERSION
    horde_session.horde.faults.add(endpoint="heartbeat", kind="error", status=503, times=1)
    await watch.read()
    assert watch.horde_version == SERVER_VERSION
