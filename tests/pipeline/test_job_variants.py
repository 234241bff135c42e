"""Jobs other than plain txt2img, through the whole worker (in this process, its children on threads):
img2img and inpainting with fetched inputs, inputs that cannot be fetched, and a job popped without a
model."""

from __future__ import annotations

import base64
import collections
import io
from pathlib import Path

from PIL import Image

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from tests.worker_support import WorkerInProcess, generations_of, queue, stored_image, worker_folder


def _source(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (90, 120, 200, 255)).save(buffer, "WEBP")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_inputs_are_fetched_and_failures_become_gen_metadata(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        img2img = queue(
            horde,
            requester,
            "a red barn",
            width=512,
            height=512,
            n=2,
            source_image=_source(512, 512),
            denoising_strength=0.6,
        )
        inpainting = queue(
            horde,
            requester,
            "a blue door",
            width=512,
            height=512,
            source_image=_source(512, 512),
            source_mask=_source(512, 512),
            source_processing="inpainting",
        )
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner, max_batch=2, max_power=32, queue_size=0))
        assert await worker.run() == 0
        for wp in (img2img, inpainting):
            for pg in generations_of(horde, wp):
                assert pg.is_completed and not pg.faulted and submit_counter[pg.id] == 1
                assert not any(entry["value"] == "download_failed" for entry in pg.gen_metadata)
                assert stored_image(horde, pg).size == (512, 512)
    assert worker.errors == []


async def test_an_unfetchable_source_falls_back_to_txt2img_and_says_so(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        wp = queue(horde, requester, "a green field", width=512, height=512, source_image=_source(512, 512))
        horde.faults.add(endpoint="source", kind="expired_url", times=1)
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner))
        assert await worker.run() == 0
        [pg] = generations_of(horde, wp)
        assert pg.is_completed and not pg.faulted
        assert {"type": "source_image", "value": "download_failed"} in pg.gen_metadata
    assert worker.errors == []


async def test_a_job_popped_without_a_model_is_faulted_and_served_again(
    tmp_path: Path, submit_counter: collections.Counter[str]
) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        wp = queue(horde, requester, "a quiet street")
        horde.faults.add(endpoint="pop", kind="empty_model", times=1)
        worker = WorkerInProcess(worker_folder(tmp_path, horde, owner))
        assert await worker.run() == 0
        first, second = generations_of(horde, wp)
        assert first.faulted and submit_counter[first.id] == 1
        assert second.is_completed and not second.faulted
    [fault] = worker.of_kind("job_faulted")
    assert (fault.job, fault.fields["reason"]) == (first.id, "the horde sent the job without a model")
    assert [event.job for event in worker.of_kind("job_started")] == [second.id]  # the faulted one never ran
