"""The running worker fetches a missing model in the background and offers it only once it is verified."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.models.reference_cache import ReferencePaths
from tests.models.file_server import ServedFile, file_server
from tests.support import FIXTURES
from tests.worker_support import MODEL, WorkerProcess, error_lines, generations_of, queue, run_burst, worker_folder

BODY = b"deliberate weights " * 20_000


def _with_download(folder: Path, url: str) -> None:
    """Give MODEL a downloadable file in the worker's cached reference."""
    path = ReferencePaths(folder / "models").reference
    reference = json.loads((FIXTURES / "stable_diffusion.json").read_text())
    reference[MODEL]["config"] = {
        "files": [{"path": "deliberate.safetensors", "sha256sum": hashlib.sha256(BODY).hexdigest()}],
        "download": [{"file_name": "deliberate.safetensors", "file_path": "", "file_url": url}],
    }
    path.write_text(json.dumps(reference))


async def test_a_model_is_offered_once_its_background_download_is_verified(tmp_path: Path) -> None:
    gate = asyncio.Event()
    served = ServedFile(BODY, gate=gate)
    async with (
        serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde,
        file_server({"/deliberate": served}) as base,
    ):
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"download_models": True})
        _with_download(folder, f"{base}/deliberate")
        wp = queue(horde, requester, "a harbour", n=1)
        worker = await WorkerProcess(folder).start("--burst")
        try:
            await worker.wait_for_line("Serving 0 model(s)")
            await worker.wait_for_line("Downloading deliberate.safetensors from")
            assert not horde.state.workers  # nothing offered, so it has not popped yet
            gate.set()
            await worker.wait_for_line(f"Model '{MODEL}' is on disk and verified; offering it")
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()
        assert [pg.is_completed for pg in generations_of(horde, wp)] == [True]
    assert (folder / "models" / "compvis" / "deliberate.safetensors").read_bytes() == BODY
    assert error_lines(folder / "logs") == []


async def test_the_worker_stops_when_no_model_can_be_verified(tmp_path: Path) -> None:
    served = ServedFile(b"not the weights the reference describes")
    async with (
        serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde,
        file_server({"/deliberate": served}) as base,
    ):
        owner = horde.add_user("owner", trusted=True)
        folder = worker_folder(tmp_path, horde, owner, fake_backend={"download_models": True})
        _with_download(folder, f"{base}/deliberate")
        worker = await WorkerProcess(folder).start()
        try:
            assert await worker.wait() == 1, worker.output
        finally:
            await worker.kill()
    assert f"Model '{MODEL}' will not be offered: deliberate.safetensors: sha256 is" in worker.output
    assert "Stopping: no configured model could be put on disk and verified" in worker.output
    assert not horde.state.workers
    assert not (folder / "models" / "compvis" / "deliberate.safetensors").exists()


async def test_the_fake_backend_serves_without_fetching_model_files(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        folder = worker_folder(tmp_path, horde, owner)
        _with_download(folder, "http://127.0.0.1:9/deliberate")  # would fail at once if tried
        wp = queue(horde, requester, "a harbour", n=1)
        worker = await run_burst(folder)
        assert [pg.is_completed for pg in generations_of(horde, wp)] == [True]
    assert "Downloading" not in worker.output
    assert not (folder / "models" / "compvis").exists()
