"""The result spool: atomic entries on disk, rejected when damaged, a full disk survived, resumed submits."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.jobs.record import IdOutcome, JobRecord
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.pipeline.spool import (
    REJECTED,
    TEMP_PREFIX,
    ResultSpool,
    SpoolEntry,
    entries_for,
    record_for,
    resume_spooled,
)
from horde_worker_regen.pipeline.submitter import ImageReport, Submitter
from tests.jobs.conftest import HordeSession, RecordingSleep, webp_bytes
from tests.support import REPO_ROOT

WALL_NOW = 1_800_000_000.0
CENSORED_METADATA = ({"type": "batch_index", "value": "see_ref", "ref": "1"}, {"type": "censorship", "value": "nsfw"})


def _reports() -> list[ImageReport]:
    ok_metadata = ({"type": "batch_index", "value": "see_ref", "ref": "0"},)
    ok = ImageReport(0, webp_bytes(colour=(200, 0, 0)), "ok", ok_metadata)
    censored = ImageReport(1, webp_bytes(colour=(0, 0, 0)), "censored", CENSORED_METADATA)
    return [ok, censored]


async def _spooled_job(session: HordeSession, spool: ResultSpool) -> tuple[JobRecord, list[SpoolEntry]]:
    record = await session.pop_record(n=2, seed="77", popped_at=time.monotonic())
    entries = entries_for(record, _reports(), spool.wall_deadline(record))
    assert spool.write(entries)
    return record, entries


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


async def test_entries_read_back_as_written_and_go_when_removed(horde_session: HordeSession, tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record, entries = await _spooled_job(horde_session, spool)
    assert _files(spool.folder) == sorted(f"{job_id}.json" for job_id in record.ids)
    loaded = {entry.job_id: entry for entry in spool.load()}
    assert loaded == {entry.job_id: entry for entry in entries}
    censored = loaded[record.ids[1]]
    assert (censored.state, censored.censored, censored.seed) == ("censored", True, 77)  # the batch's seed
    assert censored.upload_url == record.upload_urls[1] and censored.image == _reports()[1].image
    assert censored.gen_metadata == CENSORED_METADATA
    # The deadline is wall-clock time: what is left of the ttl, counted from now.
    assert abs(censored.deadline - (time.time() + record.deadline - time.monotonic())) < 5
    spool.remove([record.ids[0]])
    assert [entry.job_id for entry in spool.load()] == [record.ids[1]]
    spool.remove(record.ids)
    assert spool.load() == [] and _files(spool.folder) == []


async def test_a_truncated_entry_is_moved_aside_and_never_resumed(
    horde_session: HordeSession, tmp_path: Path, caplog_loguru: list[str]
) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record, _ = await _spooled_job(horde_session, spool)
    damaged = spool.path_of(record.ids[0])
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # what a torn write leaves
    assert [entry.job_id for entry in spool.load()] == [record.ids[1]]
    assert not damaged.exists() and (spool.folder / REJECTED / damaged.name).exists()
    assert any(f"{damaged} is unusable (not a complete spool entry" in line for line in caplog_loguru)


async def test_an_image_that_fails_its_checksum_is_rejected(horde_session: HordeSession, tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record, entries = await _spooled_job(horde_session, spool)
    forged = entries[0].model_copy(update={"image": b"not the image that was checked"})
    spool.path_of(record.ids[0]).write_text(forged.model_dump_json())
    assert [entry.job_id for entry in spool.load()] == [record.ids[1]]
    assert (spool.folder / REJECTED / f"{record.ids[0]}.json").exists()


def test_a_write_interrupted_before_its_rename_is_deleted_at_start(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path / "spool")
    spool.folder.mkdir()
    (spool.folder / f"{TEMP_PREFIX}abc").write_bytes(b'{"job_id": "half')
    assert spool.load() == [] and _files(spool.folder) == []


async def test_a_full_disk_is_logged_and_leaves_no_file(
    horde_session: HordeSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog_loguru: list[str]
) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record = await horde_session.pop_record(n=2, popped_at=time.monotonic())

    def disk_full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # where a delayed-allocation filesystem reports ENOSPC
    assert not spool.write(entries_for(record, _reports(), spool.wall_deadline(record)))
    assert _files(spool.folder) == []
    [line] = [line for line in caplog_loguru if "Cannot spool" in line]
    assert f"Cannot spool the result to {spool.path_of(record.ids[0])} (the disk is full; " in line
    assert "MB free" in line and "uploaded from memory" in line and "lost if the worker crashed" in line


def test_a_write_cut_off_by_the_kernel_leaves_nothing_behind(tmp_path: Path) -> None:
    """A real failed write(2): a file size limit (RLIMIT_FSIZE) the entry does not fit in."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from horde_worker_regen.pipeline.spool import ResultSpool, SpoolEntry
        from loguru import logger
        logger.remove()
        logger.add(sys.stdout, format="{{message}}")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        image = bytes(range(256)) * 400
        import hashlib
        entry = SpoolEntry(job_id="big", upload_url=None, seed=1, state="ok", censored=False, gen_metadata=(),
                           deadline=1.0, ttl=60, model="m", width=64, height=64, steps=1,
                           image_sha256=hashlib.sha256(image).hexdigest(), image=image)
        print("written" if ResultSpool(Path({str(tmp_path / "spool")!r})).write([entry]) else "not written")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=True,
    )
    assert "not written" in done.stdout, done.stdout + done.stderr
    assert "Cannot spool the result to" in done.stdout and "File too large" in done.stdout
    assert _files(tmp_path / "spool") == []


async def test_a_resumed_entry_is_uploaded_and_submitted_as_it_was_spooled(
    horde_session: HordeSession, tmp_path: Path
) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record, _ = await _spooled_job(horde_session, spool)
    entry = next(entry for entry in spool.load() if entry.job_id == record.ids[1])
    resumed, report = record_for(entry, time.monotonic(), time.time())
    assert abs(resumed.deadline - record.deadline) < 5
    result = await Submitter(horde_session.client, sleep=RecordingSleep()).report_image(resumed, report)
    assert result.outcome is IdOutcome.SUBMITTED
    pg = horde_session.horde.state.generations[record.ids[1]]
    assert (pg.seed, pg.censored, pg.generation) == (77, True, "R2")  # the batch's seed
    assert pg.gen_metadata == list(CENSORED_METADATA)
    stored = horde_session.horde.state.objects.get(GENERATIONS_BUCKET, f"{record.ids[1]}.webp")
    assert stored is not None and stored.data == _reports()[1].image


class CollectingPipeline:
    """Stands in for the pipeline's `resume`, which the worker end-to-end test drives for real."""

    def __init__(self) -> None:
        self.resumed: list[tuple[JobRecord, list[ImageReport]]] = []

    def resume(self, record: JobRecord, reports: list[ImageReport]) -> None:
        self.resumed.append((record, reports))


async def test_entries_past_their_deadline_are_dropped_with_one_line_each(
    horde_session: HordeSession, tmp_path: Path, caplog_loguru: list[str]
) -> None:
    spool = ResultSpool(tmp_path / "spool")
    record = await horde_session.pop_record(n=2, popped_at=time.monotonic())
    live, late = entries_for(record, _reports(), WALL_NOW)
    spool.write(
        [live.model_copy(update={"deadline": WALL_NOW + 100}), late.model_copy(update={"deadline": WALL_NOW - 42})]
    )
    collecting = CollectingPipeline()
    assert resume_spooled(spool, collecting, now=500.0, wall_now=WALL_NOW) == 1
    [(resumed, [report])] = collecting.resumed
    assert resumed.ids == (record.ids[0],) and resumed.deadline == 600.0 and report.image == live.image
    assert f"Spooled result {record.ids[1]} dropped: its deadline passed 42s ago\n" in caplog_loguru
    assert _files(spool.folder) == [f"{record.ids[0]}.json"]


def test_a_spool_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    config = tmp_path / "bridgeData.yaml"
    config.write_text(f"spool_dir: {tmp_path / 'results'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, {})
    assert "spool_dir" in str(caught.value) and f"must be a folder, but {tmp_path / 'results'} is a file" in str(
        caught.value
    )
