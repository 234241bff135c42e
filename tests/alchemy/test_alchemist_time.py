"""A form's time: faulted while its `faulted` submit can still land, its stuck child killed and replaced."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.pipeline.alchemy import runner
from horde_worker_regen.pipeline.alchemy.alchemist import AlchemySettings
from horde_worker_regen.scheduling.alchemy import REPORT_RESERVE_S
from horde_worker_regen.worker import alchemy_wiring
from tests.alchemy.support import WAIT_S, alchemist_folder, form_named, png
from tests.worker_support import WorkerInProcess, horde_with_users

SHORT_TIME_S = 1.5  # the form's time to be done, once the time to report it is set aside


@pytest.fixture
def short_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forms live `REPORT_RESERVE_S + SHORT_TIME_S` seconds instead of the horde's 3 minutes, and a
    post-processor is expected to take far less than that (as once a few have been timed)."""
    original: Callable[..., AlchemySettings] = alchemy_wiring.alchemy_settings

    def short(data: BridgeData, bridge_agent: Callable[[], str]) -> AlchemySettings:
        settings = original(data, bridge_agent)
        popper = dataclasses.replace(settings.popper, ttl=REPORT_RESERVE_S + SHORT_TIME_S)
        return dataclasses.replace(settings, popper=popper)

    monkeypatch.setattr(alchemy_wiring, "alchemy_settings", short)
    monkeypatch.setitem(runner.FIRST_GUESS_S, "post_processing", 0.05)


@pytest.mark.usefixtures("short_forms")
async def test_a_form_past_its_time_is_faulted_and_its_stuck_process_replaced(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x4plus"], png(64, 64))
        folder = alchemist_folder(tmp_path, horde, owner, dreamer=False, post_process_timeout=1)
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            await worker.wait_for(
                lambda event: event.kind == "child_started" and event.fields["child"] == "inference-1#2"
            )
            worker.children.hold(worker.child("inference-1#2"))  # it takes the form and never answers
            faulted = await worker.wait_for(lambda event: event.kind == "form_faulted")
            killed = await worker.wait_for(lambda event: event.kind == "child_killed")
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)  # popped again, done on the new process
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        form = form_named(horde, request.id, "RealESRGAN_x4plus")
        assert [attempt.state for attempt in horde.state.submit_attempts[form.id]] == ["faulted", "ok"]
        assert form.abort_count == 1  # the worker's faulted submit: the horde's own deadline never fired
    [popped, again] = [event for event in worker.of_kind("form_popped") if event.job == form.id]
    assert faulted.at - popped.at == pytest.approx(SHORT_TIME_S, abs=0.5)
    assert "not done in time" in faulted.fields["reason"]
    assert killed.fields["child"] == "inference-1#2"
    [started_again] = [event for event in worker.of_kind("form_started") if event.at > again.at]
    assert started_again.fields["child"] == "inference-1#3"
