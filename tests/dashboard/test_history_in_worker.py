"""The whole worker (in this process, against the local horde) picks up the history its last run left in
logs/history.jsonl, serves it at /history.json, and leaves the file with it (a torn line gone), and its
last status snapshot in logs/last-status.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from horde_worker_regen.dashboard.history import SERIES, Sample
from horde_worker_regen.worker.history_file import HISTORY_FILE, read_history
from horde_worker_regen.worker.status_file import LAST_STATUS_FILE
from tests.worker_support import WorkerInProcess, horde_with_users, until_true, worker_folder


async def test_a_started_worker_serves_and_keeps_the_history_of_its_last_run(tmp_path: Path) -> None:
    now = time.time()
    earlier = [Sample(now - 120.0 + 30.0 * index, dict.fromkeys(SERIES, float(index)), (0.5,)) for index in range(3)]
    async with horde_with_users() as (horde, owner, _):
        folder = worker_folder(tmp_path, horde, owner)
        history = folder / "logs" / HISTORY_FILE
        history.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"kind": "history_sample", **sample.fields()}) for sample in earlier]
        history.write_text("\n".join([*lines, '{"kind": "history_sample", "t": 17']))  # the last run crashed
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            await until_true(lambda: worker.worker.dashboard is not None, "the dashboard to listen")
            dashboard = worker.worker.dashboard
            assert dashboard is not None and dashboard.url is not None
            async with aiohttp.ClientSession() as session, session.get(f"{dashboard.url}history.json") as response:
                served = await response.json()
            worker.worker.request_stop("test done", 0)
            assert await run == 0
    assert [point[0] for point in served["series"]["kudos_per_hour"]] == [sample.t for sample in earlier]
    assert [point[1] for point in served["series"]["queue_depth"]] == [0.0, 1.0, 2.0]
    assert read_history(history, time.time()) == earlier
    assert '"t": 17' not in history.read_text()
    last = json.loads((folder / "logs" / LAST_STATUS_FILE).read_text())  # for a support bundle after the run
    assert last["worker"]["stopping"] is True and last["worker"]["name"] == "Pipeline Test Dreamer"
    assert worker.errors == []
