"""The pipeline bench's figures, from an event file as the worker writes it (made-up child stamps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.pipeline_bench import parse_args, pop_round_trip_ms, pops_per_second, report, slot_figures
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.worker.event_file import EventFile, read_event_file

# Two slots: slot 0 runs 0-1, 1.002-2.002, 2.006-3.006; slot 1 runs 0.5-1.5, 1.51-2.51.
JOBS = [(0, 0.0, 1.0), (0, 1.002, 2.002), (0, 2.006, 3.006), (1, 0.5, 1.5), (1, 1.51, 2.51)]


def write_run(path: Path, *, stopped: bool = True) -> None:
    """The records a 2-slot run leaves, written by the worker's own sink."""
    events, sink = EventLog(), EventFile(path)
    events.add_sink(sink)
    events.emit("worker_started", slots=2, process={"cpu_user_s": 1.0, "cpu_system_s": 0.25, "rss_bytes": 2**26})
    for index, (slot, started, finished) in enumerate(JOBS):
        key = f"job-{index}"
        events.emit("job_popped", key)
        events.emit("job_started", key, slot=slot)
        events.emit("inference_finished", key, slot=slot, ok=True, started_at=started, finished_at=finished)
        events.emit("job_ended", key, state="submitted", slot=slot, started_at=started, finished_at=finished)
    events.emit("inference_finished", "lost", slot=1, ok=False, started_at=None, finished_at=None)
    if stopped:
        process = {"cpu_user_s": 1.04, "cpu_system_s": 0.26, "rss_bytes": 2**27}
        events.emit("worker_stopped", process=process, kudos={"estimated": 1.0})
    sink.close()


def test_duty_and_hand_off_gaps_come_from_the_child_stamps(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_run(path)
    figures = slot_figures(read_event_file(path))
    busy = 5.0
    span = 3.006 + (2.51 - 0.5)
    assert figures["duty_span"] == pytest.approx(busy / span)
    # Where both slots had work (0.5 to 2.51): slot 0 is busy 2.004 s of it, slot 1 2.0 s.
    assert figures["duty_common_window"] == pytest.approx((0.5 + 1.0 + 0.504 + 1.0 + 1.0) / (2 * 2.01))
    assert figures["gap_max_ms"] == pytest.approx(10.0)
    assert figures["gap_ms"]["p50"] == pytest.approx(4.0)  # gaps 2, 4 and 10 ms
    assert (figures["jobs_timed"], figures["slots_used"]) == (5, 2)


def test_the_report_reads_cpu_and_memory_from_the_first_and_last_records(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_run(path)
    args = parse_args(["--jobs", "5", "--threads", "2"])
    text = report(read_event_file(path), 12.5, args, ("0.50 / 0.40 / 0.30", "1.50 / 0.60 / 0.35"))
    assert "| Main process CPU while serving | 0.05 s, 10.00 ms per job |" in text
    assert "| Main process CPU for start-up (imports, checks, spawning) | 1.25 s |" in text
    assert "| Main process RSS when serving began / at exit | 64.0 / 128.0 MiB |" in text
    assert "| Slots that ran jobs | 2 of 2 |" in text
    assert "(the slots could take 10.0) |" in text  # 2 slots at 200 ms per job
    assert "0.50 / 0.40 / 0.30 before, 1.50 / 0.60 / 0.35 after" in text


def test_a_run_that_did_not_stop_cleanly_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_run(path, stopped=False)
    with pytest.raises(SystemExit, match="no worker_stopped record"):
        report(read_event_file(path), 1.0, parse_args([]), ("0", "0"))


def test_the_pop_rate_counts_pops_over_the_time_they_took() -> None:
    records = [{"kind": "job_popped", "at": at} for at in (10.0, 10.5, 11.0, 12.0)]
    records.insert(2, {"kind": "job_started", "at": 10.7})
    assert pops_per_second(records) == pytest.approx(3 / 2.0)
    assert pops_per_second(records[:1]) != pops_per_second(records[:1])  # one pop: no rate (NaN)


def test_the_pop_round_trip_is_read_from_the_answered_pops() -> None:
    records = [{"kind": "pop_answered", "at": 1.0, "seconds": seconds} for seconds in (0.002, 0.004, 0.001, 0.020)]
    assert pop_round_trip_ms(records) == "2.00 / 20.00 ms"
    assert pop_round_trip_ms([{"kind": "job_popped", "at": 1.0}]) == "n/a"
