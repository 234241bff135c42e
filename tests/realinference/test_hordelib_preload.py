"""Real hordelib on the CPU: a recycled inference process preloads the model, and its next job reuses it.

hordelib's checkpoint loader logs "Loading model <name>" on every call and "Model was previously
loaded, returning it." when it hands back the checkpoint it already holds; the worker runs with `-v`,
so each process's debug lines (tagged with its pid) land in the slot's log file.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.models.test_checkpoint import TestCheckpoint
from tests.realinference.conftest import checkpoint_horde, hordelib_worker_folder
from tests.worker_support import error_lines, generations_of, run_burst

WORKER_TIMEOUT_S = 900.0
LOADER_CALL, REUSED, PRELOADING = "Loading model ", "Model was previously loaded, returning it.", "Preloading model."
# A file line: "<time> | <level> | <pid> | <where> - <message>".
PID = re.compile(r"^\S+ \S+ \| \w+ +\| (\d+) \|")


def _loader_lines_by_process(logs: Path) -> dict[str, list[str]]:
    """hordelib's checkpoint-loader lines of every inference process, by pid, in order."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for path in sorted(logs.glob("bridge_*.log")):
        for line in path.read_text().splitlines():
            match = PID.match(line)
            if match and any(marker in line for marker in (LOADER_CALL, REUSED, PRELOADING)):
                found[match.group(1)].append(line)
    return found


async def test_recycled_process_preloads_the_model_its_next_job_uses(
    tmp_path: Path, test_checkpoint: TestCheckpoint
) -> None:
    async with checkpoint_horde(test_checkpoint) as (horde, owner, requester):
        body = {
            "prompt": "a lighthouse",
            "models": [test_checkpoint.name],
            "params": {"width": 64, "height": 64, "steps": 1, "sampler_name": "k_euler", "n": 1},
        }
        requests = [queue_request(horde.horde, requester, body) for _ in range(3)]
        # Two jobs on the first process, then it is recycled: the third job runs on its replacement.
        folder = hordelib_worker_folder(
            tmp_path,
            horde,
            owner,
            test_checkpoint,
            queue_size=0,
            recycle_process_after_jobs=2,
            inference_step_timeout=600,
            preload_timeout=600,
        )
        worker = await run_burst(folder, "-v", timeout=WORKER_TIMEOUT_S)
        for wp in requests:
            assert [pg.is_completed and not pg.faulted for pg in generations_of(horde, wp)] == [True]
    assert worker.output.count("it has run 2 jobs (recycle_process_after_jobs: 2)") == 1
    processes = _loader_lines_by_process(folder / "logs")
    assert len(processes) == 2, processes
    first, second = (processes[pid] for pid in sorted(processes, key=lambda pid: processes[pid][0]))
    # The first process loaded the checkpoint for its first job and reused it for its second.
    assert sum(LOADER_CALL in line for line in first) == 2 and sum(REUSED in line for line in first) == 1
    assert not any(PRELOADING in line for line in first)
    # Its replacement loaded it before any job (the preload), and its only job did not load it again.
    assert sum(PRELOADING in line for line in second) == 1 and PRELOADING in second[1], second
    assert sum(LOADER_CALL in line for line in second) == 2 and sum(REUSED in line for line in second) == 1
    assert REUSED in second[-1], second
    assert error_lines(folder / "logs") == []
