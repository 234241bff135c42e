"""The event log (what happened to each job and child, in memory) and its JSON-lines file (`--metrics-file`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from horde_worker_regen.jobs.events import Event, EventLog
from horde_worker_regen.logs.redaction import REDACTED, register_secrets
from horde_worker_regen.worker.event_file import EventFile, parse_event_lines, read_event_file


class Ticks:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def error_records() -> Iterator[list[str]]:
    """The ERROR records logged during the test (counted, never compared as text)."""
    records: list[str] = []
    handler = logger.add(records.append, level="ERROR", format="{message}")
    yield records
    logger.remove(handler)


def test_each_record_has_its_kind_stamp_job_and_fields() -> None:
    events = EventLog(clock=Ticks())
    popped = events.emit("job_popped", "job-1", ids=["a", "b"], model="Deliberate")
    started = events.emit("child_started", child="inference-1#2", pid=42)
    assert (popped.kind, popped.at, popped.job) == ("job_popped", 101.0, "job-1")
    assert popped.as_json() == {
        "kind": "job_popped",
        "at": 101.0,
        "job": "job-1",
        "ids": ["a", "b"],
        "model": "Deliberate",
    }
    assert started.as_json() == {"kind": "child_started", "at": 102.0, "child": "inference-1#2", "pid": 42}
    assert list(events) == [popped, started]


def test_a_field_can_never_hide_the_stamp_the_kind_or_the_job() -> None:
    event = Event("job_ended", 5.0, "job-1", {"at": -1.0, "job": "other", "state": "submitted"})
    assert event.as_json() == {"kind": "job_ended", "at": 5.0, "job": "job-1", "state": "submitted"}


def test_the_log_keeps_only_its_newest_records() -> None:
    events = EventLog(clock=Ticks(), kept=3)
    for index in range(5):
        events.emit("job_queued", f"job-{index}")
    assert [event.job for event in events] == ["job-2", "job-3", "job-4"]


def test_records_are_found_by_kind_and_by_job_oldest_first() -> None:
    events = EventLog(clock=Ticks())
    events.emit("job_popped", "a")
    events.emit("job_popped", "b")
    events.emit("child_lost", child="inference-1#2", reason="killed")
    events.emit("job_ended", "a", state="submitted")
    assert [(event.kind, event.job) for event in events.of_kind("job_popped", "job_ended")] == [
        ("job_popped", "a"),
        ("job_popped", "b"),
        ("job_ended", "a"),
    ]
    assert [event.kind for event in events.of_job("a")] == ["job_popped", "job_ended"]
    assert events.of_job("missing") == [] and events.of_kind("job_faulted") == []


async def test_a_wait_resolves_on_a_record_emitted_later() -> None:
    events = EventLog(clock=Ticks())
    events.emit("job_ended", "a", state="faulted")
    loop = asyncio.get_running_loop()
    # Emitted by the loop once the wait below is registered, as a pipeline task would.
    loop.call_soon(lambda: events.emit("job_started", "b", slot=0))
    loop.call_soon(lambda: events.emit("job_ended", "b", state="submitted"))
    found = await events.wait_for(lambda event: event.kind == "job_ended" and event.job == "b", timeout=10)
    assert found.fields == {"state": "submitted"}


async def test_a_wait_resolves_at_once_on_a_record_already_kept() -> None:
    events = EventLog(clock=Ticks())
    first = events.emit("job_dropped", "a", reason="expired")
    events.emit("job_dropped", "b", reason="expired")
    assert await events.wait_for(lambda event: event.kind == "job_dropped", timeout=0) is first


async def test_a_wait_times_out_when_nothing_matches_and_the_log_goes_on() -> None:
    events = EventLog(clock=Ticks())
    with pytest.raises(asyncio.TimeoutError):
        await events.wait_for(lambda event: event.kind == "worker_stopped", timeout=0.01)
    events.emit("worker_stopped")  # the timed-out wait is gone: nothing left to wake
    assert [event.kind for event in events] == ["worker_stopped"]


def test_a_failing_sink_is_dropped_and_never_breaks_the_emitter(error_records: list[str]) -> None:
    events = EventLog(clock=Ticks())
    calls: list[str] = []
    kept: list[Event] = []

    def broken(event: Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("sink bug")

    events.add_sink(broken)
    events.add_sink(kept.append)
    events.emit("job_popped", "a")
    events.emit("job_queued", "a")
    assert calls == ["job_popped"]  # dropped after its first failure
    assert [event.kind for event in kept] == ["job_popped", "job_queued"]
    assert [event.kind for event in events] == ["job_popped", "job_queued"]
    assert error_records == []  # a warning, not an error: the worker is fine


def run_into(path: Path) -> EventLog:
    """A short run's records written to `path` (closed at the end, as the orchestrator does at exit)."""
    events = EventLog(clock=Ticks())
    sink = EventFile(path)
    events.add_sink(sink)
    events.emit("worker_started", slots=2, process={"cpu_user_s": 1.5, "rss_bytes": 10})
    events.emit("job_popped", "job-1", ids=["a"], model="Deliberate", ttl=150)
    events.emit("inference_finished", "job-1", slot=0, ok=True, started_at=7.25, finished_at=8.5)
    events.emit("job_ended", "job-1", state="submitted", reward=12.5, slot=0, started_at=7.25, finished_at=None)
    events.emit("worker_stopped", process={"cpu_user_s": 2.0}, kudos={"estimated": 11.25, "credited": None})
    sink.close()
    events.emit("job_popped", "late")  # after close: not written, and no failure
    return events


def test_the_file_holds_every_record_as_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    events = run_into(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    assert [json.loads(line) for line in lines] == [event.as_json() for event in list(events)[:5]]
    assert read_event_file(path) == [event.as_json() for event in list(events)[:5]]


def test_a_torn_last_line_is_skipped_on_reading(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    events = run_into(path)
    with path.open("a") as file:
        file.write('{"kind":"job_ended","at":9')  # the worker died mid-write
    assert read_event_file(path) == [event.as_json() for event in list(events)[:5]]


def test_a_full_disk_stops_the_file_once_and_the_worker_goes_on(error_records: list[str]) -> None:
    full = Path("/dev/full")  # every write to it fails with "No space left on device"
    if not full.exists():
        pytest.skip("needs /dev/full")
    events = EventLog(clock=Ticks())
    sink = EventFile(full)
    events.add_sink(sink)
    for index in range(3):
        events.emit("job_popped", f"job-{index}")
    assert not sink.writing and sink.written == 0
    assert len(events.of_kind("job_popped")) == 3
    assert len(error_records) == 1
    sink.close()


def test_a_file_that_cannot_be_created_is_reported_once_and_nothing_fails(
    tmp_path: Path, error_records: list[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    sink = EventFile(blocker / "metrics.jsonl")
    events = EventLog(clock=Ticks())
    events.add_sink(sink)
    events.emit("worker_started")
    events.emit("worker_stopped")
    assert not sink.writing and len(error_records) == 1
    assert [event.kind for event in events] == ["worker_started", "worker_stopped"]


def test_secrets_never_reach_the_file_wherever_they_hide(tmp_path: Path) -> None:
    secret = "evt-secret-Zq81xWv0"
    register_secrets([secret])
    path = tmp_path / "metrics.jsonl"
    events = EventLog(clock=Ticks())
    sink = EventFile(path)
    events.add_sink(sink)
    events.emit(
        "job_faulted",
        "job-1",
        reason=f"GET https://example.com/in.png?token={secret} answered 403",
        cause={"detail": [f"key {secret!r}"], "path": tmp_path / secret},
    )
    sink.close()
    text = path.read_text()
    assert secret not in text and REDACTED in text
    (record,) = read_event_file(path)
    assert record["reason"] == f"GET https://example.com/in.png?token={REDACTED} answered 403"
    assert record["cause"]["path"].endswith(REDACTED)  # a value JSON cannot hold is written as its text


RECORDS = st.fixed_dictionaries(
    {"kind": st.sampled_from(["job_popped", "job_ended", "child_lost"]), "at": st.floats(0, 1e9)},
    optional={"job": st.text(max_size=8), "reason": st.text(max_size=30), "slot": st.integers(0, 15)},
)
GARBAGE = st.text(max_size=40).filter(lambda line: "\n" not in line and not parse_event_lines(line))


@given(st.lists(st.tuples(RECORDS, GARBAGE), max_size=8))
def test_every_record_between_garbage_lines_is_read_back_in_order(
    pairs: list[tuple[dict[str, object], str]],
) -> None:
    text = "\n".join(line for record, garbage in pairs for line in (json.dumps(record), garbage))
    assert parse_event_lines(text) == [record for record, _ in pairs]


@given(st.binary(max_size=400) | st.lists(st.text(max_size=30), max_size=8).map("\n".join).map(str.encode))
def test_reading_any_bytes_never_raises(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("events") / "metrics.jsonl"
    path.write_bytes(content)
    records = read_event_file(path)
    assert all(isinstance(record, dict) and isinstance(record["kind"], str) for record in records)


@pytest.mark.parametrize("line", ["[" * 100_000, "9" * 5000, '{"kind": "x"' + "}" * 3, "\ud800"])
def test_lines_that_break_json_readers_are_skipped(line: str) -> None:
    assert parse_event_lines(line + '\n{"kind":"job_popped","at":1}') == [{"kind": "job_popped", "at": 1}]
