"""The alchemist through the real CLI: its child processes, the fake backends, the local horde over HTTP."""

from __future__ import annotations

import signal
from pathlib import Path

from horde_worker_regen.localhorde.alchemy_entities import FormState
from tests.alchemy.support import ALCHEMIST, alchemist_folder, form_named, png, stored_result
from tests.worker_support import WorkerProcess, error_lines, events_of, horde_with_users

FORMS = ["RealESRGAN_x4plus", "GFPGAN", "strip_background", "nsfw", "interrogation"]


async def test_an_alchemist_only_worker_process_serves_its_forms(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, FORMS, png(64, 48))
        folder = alchemist_folder(
            tmp_path, horde, owner, dreamer=False, forms=["nsfw", "interrogation", "post-process"]
        )
        metrics = folder / "events.jsonl"
        worker = await WorkerProcess(folder).start("--metrics-file", str(metrics))
        try:
            await worker.wait_for_line(f"Serving alchemy as '{ALCHEMIST}'")
            await horde.wait_for_interrogation(request.id, "done", 120)
            worker.send_signal(signal.SIGINT)
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()
        for name in FORMS:
            form = form_named(horde, request.id, name)
            assert form.state is FormState.DONE and [a.state for a in horde.state.submit_attempts[form.id]] == ["ok"]
        assert stored_result(horde, form_named(horde, request.id, "RealESRGAN_x4plus")).size == (256, 192)
        assert set(horde.form_results(request.id)["nsfw"] or {}) == {"nsfw"}
    ended = events_of(metrics, "form_ended")
    assert sorted(record["form"] for record in ended) == sorted(FORMS)
    assert {record["state"] for record in ended} == {"submitted"}
    assert events_of(metrics, "job_popped") == []
    assert error_lines(folder / "logs") == []
    assert owner.api_key not in worker.output
