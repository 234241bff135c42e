"""What the operator reads on the console: the exit summary and start-up progress, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from horde_worker_regen.horde.credit import Credited
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import serve_local_horde
from horde_worker_regen.pipeline.alchemy.stats import AlchemyFigures
from horde_worker_regen.pipeline.stats import StatsSnapshot
from horde_worker_regen.status.console import AlchemyLine, format_status, format_summary
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


def _snapshot(**changes: object) -> StatsSnapshot:
    figures: dict[str, object] = {
        "uptime": 600.0, "jobs": 4, "images": 6, "faulted": 0, "dropped": 0, "kudos_session": 40.0,
        "kudos_per_hour": 240.0, "megapixelsteps_per_second": 0.5, "jobs_per_hour": 24.0, "idle_seconds": 60.0,
        "kudos_factor": 0.9, "kudos_credited": Credited(52.0, 50.0, 2.0, 0.0),
    }  # fmt: skip
    return StatsSnapshot(**(figures | changes))  # type: ignore[arg-type]


ALCHEMY = AlchemyLine(
    AlchemyFigures(12, 1, 0, 36.0, 216.0, {}, {}, None), in_flight=2, offered=3, configured=4, maintenance=False
)


def test_the_status_line_adds_the_alchemist_s_forms_in_flight_and_kudos() -> None:
    line = format_status(_snapshot(), 1, 2, 0, alchemy=ALCHEMY)
    assert line == (
        "Status: 4 jobs, 6 images | kudos 40.0 est., 52.0 credited, 240/hr | 0.50 MPS/s | 24 jobs/hr | "
        "idle 0:01:00 | slots 1/2 busy, 0 waiting | alchemy 12 forms (1 faulted), 2 in flight, 36.0 kudos, 216/hr, "
        "3/4 forms offered | up 0:10:00"
    )
    assert format_status(_snapshot(), 1, 2, 0) == line.replace(
        " | alchemy 12 forms (1 faulted), 2 in flight, 36.0 kudos, 216/hr, 3/4 forms offered", ""
    )


def test_an_alchemist_only_worker_s_status_line_has_no_image_figures() -> None:
    snapshot = _snapshot(jobs=0, images=0, kudos_session=0.0, kudos_credited=None)
    in_maintenance = AlchemyLine(ALCHEMY.figures, 0, 0, 4, maintenance=True)
    assert format_status(snapshot, 0, 1, 0, paused=True, stopped=True, alchemy=in_maintenance, images=False) == (
        "Status: alchemy 12 forms (1 faulted), 0 in flight, 36.0 kudos, 216/hr, 0/4 forms offered | "
        "credited not read yet | up 0:10:00 | PAUSED (not popping) | ALCHEMIST IN MAINTENANCE"
    )
    assert format_summary(_snapshot(), images=False) == (
        "Summary: alchemy only, 52.0 kudos credited by the horde (forms 50.0, uptime 2.0), up 0:10:00"
    )


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
