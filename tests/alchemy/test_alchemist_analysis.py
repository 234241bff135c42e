"""Analysis forms (caption, interrogation, nsfw) go to the safety child, after the image checks.

What the safety child answers is its core's (`SafetyCore.run_form`, tested in tests/safety); here: that
each analysis form reaches it with its source and options, one at a time, that a form it never answers
is faulted once when the worker is aborted, and that each result reaches the horde as the horde takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.processes.messages import RunForm
from horde_worker_regen.worker.abort_file import ABORT_FILE
from tests.alchemy.support import WAIT_S, alchemist_folder, png
from tests.safety.form_shapes import assert_interrogation_shape
from tests.worker_support import WorkerInProcess, horde_with_users

ANALYSIS = ["caption", "interrogation", "nsfw"]


async def test_analysis_forms_reach_the_safety_child_one_at_a_time(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        source = png(80, 48)
        forms: list[dict[str, Any]] = [{"name": "caption", "payload": {"num_beams": 3}}, {"name": "nsfw"}]
        request = horde.queue_interrogation(requester, forms, source)
        folder = alchemist_folder(tmp_path, horde, owner, dreamer=False)
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            await worker.wait_for(lambda event: event.kind == "child_started" and event.fields["child"] == "safety#1")
            worker.children.hold(worker.child("safety#1"))  # it takes the forms and answers none
            await worker.wait_for(lambda event: event.kind == "form_started" and event.fields["lane"] == "analysis")
            alchemy = worker.worker.alchemy
            assert alchemy is not None
            # alchemy_max_concurrency 1: no other analysis form is asked for until this one is answered.
            assert alchemy.alchemist.capacity().analysis_held == 1
            assert not set(ANALYSIS) & set(alchemy.alchemist.plan().forms)
            (folder / "logs").mkdir(exist_ok=True)
            (folder / "logs" / ABORT_FILE).touch()  # abort: every form not yet reporting is reported faulted
            assert await run == 1
        [(child, message)] = [(name, message) for name, message in worker.children.sent if isinstance(message, RunForm)]
        [form] = [form for form in horde.forms_of(request.id) if form.id == message.request.form_id]
        assert (child, message.request.form, message.request.source_image) == ("safety#1", form.name, source)
        if form.name == "caption":
            assert message.request.payload == {"num_beams": "3"}  # every payload value a string, as the horde sends it
        assert [attempt.state for attempt in horde.state.submit_attempts[form.id]] == ["faulted"]
        assert form.state is FormState.WAITING  # re-queued for another alchemist
        [other] = [other for other in horde.forms_of(request.id) if other is not form]
        assert other.id not in horde.state.submit_attempts  # never popped
    assert [event.fields["state"] for event in worker.of_kind("form_ended")] == ["faulted"]


async def test_analysis_results_reach_the_horde_beside_post_processing(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, [*ANALYSIS, "RealESRGAN_x2plus"], png(64, 64))
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner), burst=False)
        async with worker.running() as run:
            await horde.wait_for_interrogation(request.id, "done", WAIT_S)
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        results = horde.form_results(request.id)
    caption, nsfw, interrogation = results["caption"], results["nsfw"], results["interrogation"]
    assert caption is not None and set(caption) == {"caption"} and isinstance(caption["caption"], str)
    assert nsfw is not None and set(nsfw) == {"nsfw"} and type(nsfw["nsfw"]) is bool
    assert interrogation is not None and set(interrogation) == {"interrogation"}
    assert_interrogation_shape(interrogation["interrogation"])
    ended = worker.of_kind("form_ended")
    assert {event.fields["state"] for event in ended} == {"submitted"}
    rewards = {event.fields["form"]: event.fields["reward"] for event in ended}
    assert (rewards["interrogation"], rewards["caption"], rewards["nsfw"]) == (3.0, 1.0, 1.0)  # the horde's values
    analysis = [event for event in worker.of_kind("form_started") if event.fields["lane"] == "analysis"]
    assert {event.fields["child"] for event in analysis} == {"safety#1"} and len(analysis) == 3
    assert worker.errors == []
