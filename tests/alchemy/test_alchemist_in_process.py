"""The alchemist end to end: the whole worker in this process (children on threads, fake backends) against
the local horde, asserting on what reaches the horde and on the event log."""

from __future__ import annotations

from pathlib import Path

from horde_worker_regen.localhorde.alchemy_entities import FormState
from tests.alchemy.support import ALCHEMIST, WAIT_S, alchemist_folder, form_named, png, stored_result
from tests.worker_support import WorkerInProcess, generations_of, horde_with_users, queue

POST_PROCESSORS = ["RealESRGAN_x4plus", "RealESRGAN_x2plus", "strip_background", "GFPGAN", "4xNomos8kSC"]
SCALES = {"RealESRGAN_x4plus": 4, "RealESRGAN_x2plus": 2, "strip_background": 1, "GFPGAN": 1, "4xNomos8kSC": 4}


async def test_post_processor_forms_are_uploaded_and_submitted_beside_image_jobs(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, POST_PROCESSORS, png(96, 64))
        image_job = queue(horde, requester, "a lighthouse at dusk")
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner), burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            await horde.wait_for_state(lambda: all(pg.is_completed for pg in generations_of(horde, image_job)), WAIT_S)
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        for name in POST_PROCESSORS:
            form = form_named(horde, request.id, name)
            assert form.state is FormState.DONE
            assert form.result is not None and set(form.result) == {name}
            assert form.result[name].startswith("http")  # the horde replaced "R2" with the download URL
            image = stored_result(horde, form)
            assert (image.format, image.size) == ("WEBP", (96 * SCALES[name], 64 * SCALES[name]))
            assert [attempt.state for attempt in horde.state.submit_attempts[form.id]] == ["ok"]
        assert stored_result(horde, form_named(horde, request.id, "strip_background")).mode == "RGBA"
    ended = worker.of_kind("form_ended")
    assert sorted(event.fields["form"] for event in ended) == sorted(POST_PROCESSORS)
    assert {event.fields["state"] for event in ended} == {"submitted"}
    assert all(event.fields["reward"] > 0 for event in ended)
    assert {event.fields["lane"] for event in worker.of_kind("form_started")} == {"post_processing"}
    assert worker.errors == []


async def test_an_alchemist_only_worker_serves_forms_and_no_image_job(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x2plus", "CodeFormers"], png(64, 64))
        image_job = queue(horde, requester, "never popped")
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            popper, alchemy = worker.worker.popper, worker.worker.alchemy
            assert popper is not None and alchemy is not None
            popper.pause()  # the owner pauses popping (the dashboard's button): no form is asked for either
            assert alchemy.alchemist.plan().forms == ()
            popper.resume()
            assert "CodeFormers" in alchemy.alchemist.plan().forms
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        assert generations_of(horde, image_job) == []
        assert horde.bridge_agent_of("Pipeline Test Dreamer") is None  # the dreamer never popped
        assert horde.bridge_agent_of(ALCHEMIST) is not None
    assert worker.of_kind("job_popped") == []
    assert {event.fields["state"] for event in worker.of_kind("form_ended")} == {"submitted"}
    assert worker.errors == []


async def test_a_failing_form_is_submitted_faulted_once_each_time_then_withdrawn(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, ["RealESRGAN_x2plus", "RealESRGAN_x4plus"], png(64, 64))
        fake = {"seconds_per_job": 0.0, "failing_post_processors": ["RealESRGAN_x2plus"]}
        folder = alchemist_folder(tmp_path, horde, owner, dreamer=False, fake_backend=fake)
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            # Two faults of a form in a row, with no success between, withdraw it (the breaker's strikes).
            await worker.wait_for(lambda event: event.kind == "form_ended" and _faulted_forms(worker) == 2)
            await horde.wait_for_state(
                lambda: form_named(horde, request.id, "RealESRGAN_x4plus").result is not None, WAIT_S
            )
            alchemist = worker.worker.alchemy
            assert alchemist is not None
            assert "RealESRGAN_x2plus" in alchemist.alchemist.served()
            assert "RealESRGAN_x2plus" not in alchemist.alchemist.plan().forms  # withdrawn by the fault breaker
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        failing = form_named(horde, request.id, "RealESRGAN_x2plus")
        attempts = horde.state.submit_attempts[failing.id]
        assert [(attempt.state, attempt.applied) for attempt in attempts] == [("faulted", True)] * 2
        assert failing.state is FormState.WAITING and failing.abort_count == 2  # re-queued for another alchemist
    faulted = worker.of_kind("form_faulted")
    assert [event.job for event in faulted] == [failing.id] * 2
    assert all("produced no image" in event.fields["reason"] for event in faulted)


async def test_a_source_url_the_guard_refuses_faults_the_form(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        private = "http://10.20.30.40/cat.png"  # a private address: never fetched without allow_private_source_urls
        request = horde.queue_interrogation(requester, ["RealESRGAN_x4plus"], private, image_size=(64, 64))
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
        async with worker.running() as run:
            ended = await worker.wait_for(lambda event: event.kind == "form_ended")
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        form = form_named(horde, request.id, "RealESRGAN_x4plus")
        pops = [event for event in worker.of_kind("form_popped") if event.job == form.id]
        # Each time it was popped (a pop under way at the stop delivers it once more), it was reported faulted once.
        assert [attempt.state for attempt in horde.state.submit_attempts[form.id]] == ["faulted"] * len(pops)
    assert ended.fields["state"] == "faulted"
    assert "its source image could not be used" in ended.fields["reason"]
    assert worker.of_kind("form_started") == []  # never sent to a child


def _faulted_forms(worker: WorkerInProcess) -> int:
    return sum(1 for event in worker.of_kind("form_ended") if event.fields["state"] == "faulted")


async def test_no_form_takes_a_slot_while_an_image_job_waits_for_one(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, POST_PROCESSORS, png(64, 64))
        images = [queue(horde, requester, f"a busy street {index}") for index in range(6)]
        fake = {"seconds_per_job": 0.15, "seconds_per_form": 0.15}
        folder = alchemist_folder(tmp_path, horde, owner, fake_backend=fake, queue_size=1)
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            await horde.wait_for_state(
                lambda: all(pg.is_completed for wp in images for pg in generations_of(horde, wp)), WAIT_S
            )
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        assert all(not pg.faulted for wp in images for pg in generations_of(horde, wp))
    waiting: set[str | None] = set()
    for event in worker.events:
        if event.kind == "job_popped":
            waiting.add(event.job)
        elif event.kind in ("job_started", "job_faulted", "job_dropped"):
            waiting.discard(event.job)
        elif event.kind == "form_started":
            assert not waiting, f"form {event.job} took a slot while {waiting} waited for one"
    assert {event.fields["state"] for event in worker.of_kind("job_ended")} == {"submitted"}
    # Post-processors are not even asked for while image jobs keep coming: only once an image pop came
    # back empty (the slot an image job just freed is the next image job's, even before it arrives).
    first_empty = min(event.at for event in worker.of_kind("pop_answered") if event.job is None)
    assert all(event.at > first_empty for event in worker.of_kind("form_popped"))
    assert first_empty > max(event.at for event in worker.of_kind("job_popped"))  # every image job came first
    assert worker.errors == []
