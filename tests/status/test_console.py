"""What the operator reads on the console: the exit summary and start-up progress, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

from horde_worker_regen.jobs.stats import StatsSnapshot
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.status.console import format_summary
from tests.worker_support import generations_of, queue, run_burst, worker_folder

SUMMARY = re.compile(r"Summary: (\d+) jobs, (\d+) images, ([\d,.]+) kudos, (\d+) faulted, (\d+) dropped, "
                     r"up \d+:\d\d:\d\d")


def test_the_summary_line_holds_the_totals() -> None:
    snapshot = StatsSnapshot(uptime=3_725.0, jobs=12, images=30, faulted=1, dropped=2, kudos_session=1_234.56,
                             kudos_per_hour=0, megapixelsteps_per_second=0, jobs_per_hour=0, idle_seconds=0)
    assert format_summary(snapshot) == "Summary: 12 jobs, 30 images, 1,234.6 kudos, 1 faulted, 2 dropped, up 1:02:05"


async def test_a_run_ends_with_its_summary_and_shows_start_up_progress(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        good = [queue(horde, requester, f"summary {index}", n=2) for index in range(3)]
        bad = queue(horde, requester, "summary <fake:fail>", disable_batching=True)
        worker = await run_burst(worker_folder(tmp_path, horde, owner, max_threads=2, max_batch=2))
        delivered = [pg for wp in good for pg in generations_of(horde, wp)]
        faulted_jobs = len(generations_of(horde, bad))  # single-image jobs: one per pop of the bad request
    assert "Starting processes [##########----------] 2/3" not in worker.output  # 3 parts: bars are proportional
    assert re.search(r"Starting processes \[#{20}\] 3/3 \(\d+\.\d s\)", worker.output), worker.output
    summaries = SUMMARY.findall(worker.output)
    assert len(summaries) == 1
    assert SUMMARY.search(worker.lines[-2]), "the summary is the worker's last line before the exit status"
    jobs, images, reported_kudos, faulted, dropped = summaries[0]
    assert (int(images), int(faulted), int(dropped)) == (len(delivered), faulted_jobs, 0)
    assert 3 <= int(jobs) <= len(delivered)
    assert float(reported_kudos.replace(",", "")) == round(sum(pg.reward for pg in delivered), 1)
