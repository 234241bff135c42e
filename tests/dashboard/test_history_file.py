"""The dashboard's history across restarts: the history file is read back tolerantly, stays bounded, and a
restarted worker's charts go on where the last run's stopped."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.history import SERIES, Sample
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.worker.history_file import HISTORY_FILE, HistoryFile, read_history
from horde_worker_regen.worker.history_service import HistoryService
from tests.dashboard.conftest import build_parts

NOW = 1_700_000_000.0
DAY = 24 * 3600.0
DATA = BridgeData(api_key="k" * 22, dreamer_name="History Dreamer", max_threads=1)


def _sample(t: float, value: float = 3.0) -> Sample:
    return Sample(t, dict.fromkeys(SERIES, value), (value / 10,))


def _line(sample: Sample) -> str:
    return json.dumps({"kind": "history_sample", "at": 1.0, **sample.fields()}) + "\n"


@given(st.binary(max_size=2000) | st.lists(st.text(max_size=60), max_size=10).map("\n".join).map(str.encode))
def test_any_bytes_read_back_without_raising_as_an_ordered_recent_history(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / HISTORY_FILE
        path.write_bytes(data + b"\n" + _line(_sample(NOW - 60)).encode() + data)
        samples = read_history(path, NOW)
    times = [sample.t for sample in samples]
    assert times == sorted(times)
    assert all(NOW - DAY <= t <= NOW for t in times)
    assert NOW - 60 in times  # a whole line survives whatever comes before and after it


def test_a_torn_last_line_garbage_old_and_future_samples_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    kept = [_sample(NOW - 3600), _sample(NOW - 30)]
    lines = [
        _line(_sample(NOW - DAY - 1)),  # older than a day
        _line(kept[0]),
        "not json at all\n",
        '{"kind": "job_ended", "t": 5}\n',
        _line(kept[1]),
        _line(_sample(NOW + 3600)),  # from a clock that was ahead
        _line(_sample(NOW - 10))[:25],  # the crash came mid-write
    ]
    path.write_text("".join(lines))
    assert read_history(path, NOW) == kept
    assert read_history(tmp_path / "missing.jsonl", NOW) == []


async def test_the_file_is_rewritten_with_only_what_is_kept_and_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    events = EventLog()
    history = await HistoryFile.start(path, [_sample(NOW - 100), _sample(NOW - 50)], max_points=5)
    events.add_sink(history)
    assert read_history(path, NOW) == [_sample(NOW - 100), _sample(NOW - 50)]
    for index in range(23):
        events.emit("history_sample", **_sample(NOW + index).fields())
        events.emit("job_ended", job=f"job-{index}")  # not a sample: not in the history file
        await history.rewritten()
        assert len(path.read_text().splitlines()) < 2 * 5
    assert [s.t for s in read_history(path, NOW + 100)][-5:] == [NOW + index for index in range(18, 23)]
    await history.close()
    events.emit("history_sample", **_sample(NOW + 50).fields())
    assert read_history(path, NOW + 100)[-1].t == NOW + 22


async def test_the_rewrite_runs_off_the_loop_and_keeps_the_samples_that_come_meanwhile_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / HISTORY_FILE
    events = EventLog()
    history = await HistoryFile.start(path, [], max_points=5)
    events.add_sink(history)
    for index in range(9):
        events.emit("history_sample", **_sample(NOW + index).fields())
    assert len(path.read_text().splitlines()) == 9
    events.emit("history_sample", **_sample(NOW + 9).fields())  # the tenth line: twice what is kept
    for index in range(10, 13):  # before the loop runs again: during the rewrite
        events.emit("history_sample", **_sample(NOW + index).fields())
    assert len(path.read_text().splitlines()) == 9  # the sink only handed the rewrite on
    await history.rewritten()
    assert [s.t for s in read_history(path, NOW + 100)] == [NOW + index for index in range(5, 13)]
    events.emit("history_sample", **_sample(NOW + 13).fields())
    await history.close()
    assert [s.t for s in read_history(path, NOW + 100)] == [NOW + index for index in range(5, 14)]


async def test_closing_waits_for_a_rewrite_under_way_and_what_came_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    events = EventLog()
    history = await HistoryFile.start(path, [_sample(NOW + index) for index in range(5)], max_points=5)
    events.add_sink(history)
    for index in range(5, 11):  # the tenth line in the file starts a rewrite, the eleventh comes during it
        events.emit("history_sample", **_sample(NOW + index).fields())
    await history.close()
    assert [s.t for s in read_history(path, NOW + 100)] == [NOW + index for index in range(5, 11)]


async def test_a_history_file_that_cannot_be_written_costs_only_the_history(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the logs folder should be")
    history = await HistoryFile.start(blocker / HISTORY_FILE, [_sample(NOW)])
    assert not history.writing
    events = EventLog()
    events.add_sink(history)
    event = events.emit("history_sample", **_sample(NOW + 30).fields())
    assert list(events) == [event]  # the event log goes on, the sample with it


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_restarted_worker_reads_back_the_last_runs_history(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    wall = WallClock(NOW)
    first = await build_parts(session, DATA)
    service = await HistoryService.start(first.sources, EventLog(), tmp_path, wall)
    taken = []
    for _ in range(3):
        wall.now += 30.0
        first.clock.now += 30.0
        taken.append(service.sampler.sample_now())
    await service.stop()
    wall.now += 600.0  # the worker was down ten minutes
    second = await build_parts(session, DATA)
    restarted = await HistoryService.start(second.sources, EventLog(), tmp_path, wall)
    try:
        assert second.sources.history.since() == taken
        wall.now += 30.0
        newest = restarted.sampler.sample_now()
        assert second.sources.history.since(taken[-1].t) == [newest]
    finally:
        await restarted.stop()
    assert read_history(tmp_path / HISTORY_FILE, wall.now) == [*taken, newest]
