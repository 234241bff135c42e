"""`run --metrics-file`: the event log of a whole run (the real CLI, its children, the fake backends) as
JSON lines, read back the way the benchmark and the demo read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from horde_worker_regen.worker.event_file import read_event_file
from tests.worker_support import generations_of, horde_with_users, queue, run_burst, worker_folder

# Each job's path through the pipeline, in order (a job's records may interleave with other jobs').
SUBMITTED_PATH = [
    "pop_answered",
    "job_popped",
    "job_queued",
    "job_started",
    "inference_finished",
    "job_checked",
    "job_ended",
]


def path_of(records: list[dict[str, Any]], job: str) -> list[str]:
    """The kinds of one job's records, without its stage records."""
    return [record["kind"] for record in records if record.get("job") == job and record["kind"] != "stage_started"]


async def test_a_run_writes_every_job_from_pop_to_end_between_start_and_stop(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        good = [queue(horde, requester, f"events {index}") for index in range(3)]
        bad = queue(horde, requester, "events <fake:fail>", disable_batching=True)
        folder = worker_folder(tmp_path, horde, owner, max_threads=2)
        worker = await run_burst(folder, "--metrics-file", str(folder / "out" / "metrics.jsonl"))
        rewards = sum(pg.reward for wp in good for pg in generations_of(horde, wp))
        handed_out_bad = len(generations_of(horde, bad))  # one job per pop of the failing request
        [agent_seen] = {worker.bridge_agent for worker in horde.state.workers.values()}
    records = read_event_file(folder / "out" / "metrics.jsonl")
    kinds = [record["kind"] for record in records]
    assert kinds.count("worker_started") == 1 and kinds[-1] == "worker_stopped"
    assert kinds.index("worker_started") < kinds.index("job_popped")
    # Every pop the horde answered, with or without a job, is timed; the burst run ends on an empty one.
    answers = [record for record in records if record["kind"] == "pop_answered"]
    assert all(record["seconds"] >= 0 for record in answers) and "job" not in answers[-1]
    assert [record["at"] for record in records] == sorted(record["at"] for record in records)

    ended = {record["job"]: record for record in records if record["kind"] == "job_ended"}
    submitted = [job for job, record in ended.items() if record["state"] == "submitted"]
    faulted = [job for job, record in ended.items() if record["state"] == "faulted"]
    assert len(submitted) == 3 and len(faulted) == handed_out_bad >= 1
    assert all(path_of(records, job) == SUBMITTED_PATH for job in submitted)
    assert all("job_faulted" in path_of(records, job) for job in faulted)
    for record in records:
        if record["kind"] == "inference_finished" and record["ok"]:
            assert record["slot"] in (0, 1) and record["started_at"] <= record["finished_at"]

    # The capability level, decided once as serving begins (the fake backend's never changes): the agent the
    # horde saw, and the factor of every reward.
    [level] = [record for record in records if record["kind"] == "bridge_level"]
    assert (level["level"], level["previous"], level["kudos_factor"]) == (1, None, 0.9)
    assert level["agent"] == agent_seen == "AI Horde Worker reGen:1:https://github.com/Haidra-Org/horde-worker-reGen"
    assert kinds.index("worker_started") < kinds.index("bridge_level") < kinds.index("job_popped")
    stopped = records[-1]
    assert (stopped["kudos"]["bridge_level"], stopped["kudos"]["bridge_factor"]) == (1, 0.9)
    assert sum(ended[job]["reward"] for job in submitted) == pytest.approx(rewards)
    assert stopped["kudos"]["estimated"] == pytest.approx(rewards * stopped["kudos"]["bridge_factor"])
    assert stopped["process"]["cpu_user_s"] >= records[kinds.index("worker_started")]["process"]["cpu_user_s"]
    assert owner.api_key not in (folder / "out" / "metrics.jsonl").read_text()
    assert not worker.still_running()
