"""What an operator sees from launch to the first image with real hordelib on the CPU: the worker's own
lines only (a few dozen), nothing that looks like a traceback, while libraries' output reaches the
child's trace log."""

from __future__ import annotations

import re
from pathlib import Path

from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.realinference.conftest import checkpoint_horde, hordelib_worker_folder
from tests.worker_support import error_lines, run_burst

MAX_CONSOLE_LINES_TO_FIRST_IMAGE = 40
TRACEBACK_LOOKING = re.compile(r"Traceback \(most recent call last\)|^\s+File \"|^\s+\^+$|Error: .*\n\s")


def console_problems(lines: list[str]) -> list[str]:
    """Lines an operator should not have to read on a run where nothing failed."""
    return [line for line in lines if TRACEBACK_LOOKING.search(line) or "warnings.warn" in line]


async def test_the_console_shows_only_the_workers_own_lines(tmp_path: Path, test_checkpoint: TestCheckpoint) -> None:
    async with checkpoint_horde(test_checkpoint) as (horde, owner, requester):
        queue_request(
            horde.horde,
            requester,
            {
                "prompt": "a lighthouse",
                "models": [test_checkpoint.name],
                "params": {"width": 64, "height": 64, "steps": 2, "sampler_name": "k_euler"},
            },
        )
        folder = hordelib_worker_folder(
            tmp_path,
            horde,
            owner,
            test_checkpoint,
            inference_step_timeout=600,
            post_process_timeout=600,
            preload_timeout=600,
        )
        worker = await run_burst(folder, timeout=900)
    first_image = next(index for index, line in enumerate(worker.lines) if "submitted:" in line)
    assert first_image + 1 <= MAX_CONSOLE_LINES_TO_FIRST_IMAGE, worker.output
    assert console_problems(worker.lines) == [], worker.output
    for noise in ("torchaudio", "IMPORT FAILED", "pip install", "MB usable", "Job Slowdown", "UserWarning"):
        assert noise not in worker.output, noise
    child_trace = (folder / "logs" / "trace_1.log").read_text()
    assert "Comfy_Horde initialised" in child_trace  # hordelib's own lines are kept for whoever debugs
    assert child_trace.count("audio nodes are not loaded") == 1
    assert error_lines(folder / "logs") == []
