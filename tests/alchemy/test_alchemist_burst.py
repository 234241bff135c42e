"""Burst mode with the alchemist: the run ends only when the image popper and the alchemist both have
nothing (an empty pop with nothing in flight), so that no queued form is left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.form_record import FormRecord
from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.pipeline.alchemy.popper import AlchemyPopper, PopperSettings
from horde_worker_regen.pipeline.burst import BurstWatch
from horde_worker_regen.scheduling.alchemy import PopPlan
from tests.alchemy.support import ALCHEMIST, WAIT_S, alchemist_folder, png
from tests.worker_support import WorkerInProcess, generations_of, horde_with_users, queue

# One form at a time and each takes a while: the image job is long done when most forms are still queued.
SLOW_FORMS = {"seconds_per_job": 0.0, "seconds_per_form": 0.2}
POST_PROCESSORS = ["RealESRGAN_x2plus", "RealESRGAN_x4plus", "strip_background", "GFPGAN"]


async def test_a_burst_run_serves_every_form_beside_the_images_before_it_ends(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        requests = [horde.queue_interrogation(requester, [*POST_PROCESSORS, "nsfw"], png(64, 64)) for _ in range(2)]
        image_job = queue(horde, requester, "a lighthouse at dusk")
        folder = alchemist_folder(tmp_path, horde, owner, fake_backend=SLOW_FORMS, alchemy_max_concurrency=1)
        worker = WorkerInProcess(folder, burst=True)
        assert await worker.run(WAIT_S) == 0
        assert all(pg.is_completed and not pg.faulted for pg in generations_of(horde, image_job))
        for request in requests:
            assert {form.state for form in horde.forms_of(request.id)} == {FormState.DONE}
    images_done = max(event.at for event in worker.of_kind("job_ended"))
    forms_done = [event.at for event in worker.of_kind("form_ended")]
    assert len(forms_done) == 10 and sum(1 for at in forms_done if at > images_done) >= 5  # not cut short
    assert worker.errors == []


async def test_an_alchemist_only_worker_ends_its_burst_run_when_the_forms_are_done(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x2plus", "nsfw", "interrogation"], png(64, 48))
        folder = alchemist_folder(tmp_path, horde, owner, dreamer=False)
        worker = WorkerInProcess(folder, burst=True)
        assert await worker.run(WAIT_S) == 0
        assert horde.interrogation_state(request.id) == "done"
    assert {event.fields["state"] for event in worker.of_kind("form_ended")} == {"submitted"}
    assert worker.of_kind("job_popped") == []
    assert worker.errors == []


async def test_the_alchemist_is_dry_only_after_an_empty_pop_naming_every_form_with_none_in_flight() -> None:
    stops: list[str] = []
    ended = asyncio.Event()

    def run_ended(reason: str, code: int) -> None:
        stops.append(reason)
        ended.set()

    watch = BurstWatch(run_ended)
    member = watch.join("form")
    in_flight: list[FormRecord] = []
    plan = PopPlan(("nsfw",), 1, complete=False)  # a lane without room: a form it did not ask for may wait
    events = EventLog()
    answered = "alchemy_pop_answered"
    async with horde_with_users() as (horde, owner, requester), aiohttp.ClientSession() as session:
        settings = PopperSettings(ALCHEMIST, (), 16, lambda: "bench:1:test", idle_interval=0.5, backoff_cap=1.0)
        popper = AlchemyPopper(
            HordeClient(session, horde.api_url, owner.api_key), settings, lambda: plan,
            lambda record, refused: in_flight.append(record), events,
            on_fatal=stops.append, in_flight=lambda: len(in_flight), burst=member,
        )  # fmt: skip
        task = asyncio.create_task(popper.run())
        try:
            await events.wait_for(lambda event: event.kind == answered, WAIT_S)
            assert not member.is_dry  # the horde may hold forms of the lane it was not asked for
            horde.queue_interrogation(requester, ["nsfw"], png())
            plan = PopPlan(("nsfw",), 1)
            popper.wake()
            got = await events.wait_for(lambda event: event.kind == answered and event.fields["forms"] == 1, WAIT_S)
            await events.wait_for(lambda event: event.kind == answered and event.at > got.at, WAIT_S)
            assert len(in_flight) == 1 and not member.is_dry  # empty, but a form is still in flight
            in_flight.clear()
            popper.wake()  # the form ended: the next empty pop ends the run
            await asyncio.wait_for(ended.wait(), WAIT_S)
            assert stops == ["burst mode: the horde has no form and nothing is in flight"]
        finally:
            popper.stop()
            await asyncio.wait_for(task, WAIT_S)
