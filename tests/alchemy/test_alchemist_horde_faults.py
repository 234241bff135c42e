"""What the horde does wrong, and the alchemist's answer: every form reported once, none lost."""

from __future__ import annotations

from pathlib import Path

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.entities import Worker
from horde_worker_regen.localhorde.jobs import set_maintenance
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from tests.alchemy.support import ALCHEMIST, WAIT_S, alchemist_folder, form_named, png
from tests.worker_support import WorkerInProcess, horde_with_users


async def test_submits_that_fail_for_a_while_are_retried_until_one_lands(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x2plus"], png(64, 64))
        horde.faults.add(endpoint="interrogate_submit", kind="error", status=500, times=1)
        horde.faults.add(endpoint="interrogate_submit", kind="rate_limit", times=1)
        horde.faults.add(endpoint="upload", kind="error", status=503, times=1)
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            ended = await worker.wait_for(lambda event: event.kind == "form_ended")
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        form = form_named(horde, request.id, "RealESRGAN_x2plus")
        assert [(a.state, a.applied) for a in horde.state.submit_attempts[form.id]] == [("ok", True)]
    assert (ended.fields["state"], ended.fields["reward"]) == ("submitted", 3.0)


async def test_a_submit_whose_answer_was_lost_ends_the_form_once(tmp_path: Path) -> None:
    """The horde applied it but the answer never came: the retry is refused (DuplicateGen) and the form
    ends there, delivered once."""
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x2plus"], png(64, 64))
        horde.faults.add(endpoint="interrogate_submit", kind="drop", times=1)
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
        async with worker.running() as run:
            ended = await worker.wait_for(lambda event: event.kind == "form_ended")
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        form = form_named(horde, request.id, "RealESRGAN_x2plus")
        assert form.state is FormState.DONE
        assert [(a.state, a.applied) for a in horde.state.submit_attempts[form.id]] == [("ok", True), ("ok", False)]
    assert ended.fields["state"] == "dropped" and "DuplicateGen" in ended.fields["reason"]


async def test_an_alchemist_in_maintenance_backs_off_and_serves_again_once_lifted(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["CodeFormers"], png(64, 64))
        horde.faults.add(endpoint="interrogate_pop", kind="maintenance", times=1)
        folder = alchemist_folder(tmp_path, horde, owner, dreamer=False, horde_backoff_cap=0.5)
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            in_maintenance = horde.state.worker_by_name
            await horde.wait_for_state(lambda: getattr(in_maintenance(ALCHEMIST), "maintenance", False), WAIT_S)
            assert form_named(horde, request.id, "CodeFormers").state is FormState.WAITING
            set_maintenance(_alchemist(horde), False)
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            worker.worker.request_stop("test done", 0)
            assert await run == 0
    assert worker.errors == []


async def test_a_form_outside_the_contract_is_reported_faulted_and_served_when_sent_right(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x4plus"], png(64, 64))
        mangled = {"endpoint": "interrogate_pop", "kind": "mangle", "path": ["forms", 0, "source_image"], "value": 17}
        horde.faults.add(mangled, times=1)
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        form = form_named(horde, request.id, "RealESRGAN_x4plus")
        assert [attempt.state for attempt in horde.state.submit_attempts[form.id]] == ["faulted", "ok"]
    [faulted] = worker.of_kind("form_faulted")
    assert (faulted.job, faulted.fields["form"]) == (form.id, "RealESRGAN_x4plus")
    assert "source_image" in faulted.fields["reason"]


def _alchemist(horde: RunningLocalHorde) -> Worker:
    alchemist = horde.state.worker_by_name(ALCHEMIST)
    assert alchemist is not None
    return alchemist
