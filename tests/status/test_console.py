"""What the operator reads on the console: the exit summary and start-up progress, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.pipeline.stats import StatsSnapshot
from horde_worker_regen.status.console import format_summary
from tests.worker_support import generations_of, queue, run_burst, worker_folder

SUMMARY = re.compile(
    r"Summary: (\d+) jobs, (\d+) images, ([\d,.]+) kudos estimated \(submit rewards x0\.90 bridge "
    r"factor, bridge level 1\), ([\d,.]+) credited by the horde \(jobs ([\d,.]+), uptime [\d,.]+\), (\d+) faulted, "
    r"(\d+) dropped, up \d+:\d\d:\d\d"
)


def test_the_summary_line_holds_the_totals_and_both_kudos_figures() -> None:
    snapshot = StatsSnapshot(
        uptime=3_725.0,
        jobs=12,
        images=30,
        faulted=1,
        dropped=2,
        kudos_session=1_234.56,
        kudos_per_hour=0,
        megapixelsteps_per_second=0,
        jobs_per_hour=0,
        idle_seconds=0,
        kudos_factor=0.9,
        kudos_credited=Credited(1_284.5, 1_234.5, 50.0, 0.0),
        bridge_level=9,
    )
    assert format_summary(snapshot) == (
        "Summary: 12 jobs, 30 images, 1,234.6 kudos estimated (submit rewards x0.90 bridge factor, bridge level 9), "
        "1,284.5 credited by the horde (jobs 1,234.5, uptime 50.0), 1 faulted, 2 dropped, up 1:02:05"
    )
    unread = StatsSnapshot(
        uptime=5.0,
        jobs=0,
        images=0,
        faulted=0,
        dropped=0,
        kudos_session=0,
        kudos_per_hour=0,
        megapixelsteps_per_second=0,
        jobs_per_hour=0,
        idle_seconds=0,
    )
    assert "credited by the horde: not read" in format_summary(unread)


async def test_a_run_ends_with_its_summary_and_shows_start_up_progress(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        good = [queue(horde, requester, f"summary {index}", n=2) for index in range(3)]
        bad = queue(horde, requester, "summary <fake:fail>", disable_batching=True)
        worker = await run_burst(worker_folder(tmp_path, horde, owner, max_threads=2, max_batch=2))
        delivered = [pg for wp in good for pg in generations_of(horde, wp)]
        faulted_jobs = len(generations_of(horde, bad))  # single-image jobs: one per pop of the bad request
        worker_kudos = sum(worker.kudos_generated for worker in horde.state.workers.values())
    assert "Starting processes [##########----------] 2/3" not in worker.output  # 3 parts: bars are proportional
    assert re.search(r"Starting processes \[#{20}\] 3/3 \(\d+\.\d s\)", worker.output), worker.output
    summaries = SUMMARY.findall(worker.output)
    assert len(summaries) == 1
    assert SUMMARY.search(worker.lines[-2]), "the summary is the worker's last line before the exit status"
    jobs, images, estimated, credited, credited_jobs, faulted, dropped = summaries[0]
    assert (int(images), int(faulted), int(dropped)) == (len(delivered), faulted_jobs, 0)
    assert 3 <= int(jobs) <= len(delivered)
    # The fake backend's bridge level (1) is an older official one: the horde pays 0.9x the submit rewards.
    paid = sum(pg.reward for pg in delivered) * 0.9
    assert float(estimated.replace(",", "")) == pytest.approx(paid, abs=0.051)
    assert float(credited_jobs.replace(",", "")) == pytest.approx(worker_kudos, abs=0.051)
    assert float(credited.replace(",", "")) == pytest.approx(float(estimated.replace(",", "")), abs=0.11)
