"""The alchemy bench: its requests go through the local horde's requester API, and its figures and verdict
come from event files as the worker writes them (made-up child stamps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.alchemy_bench import RunFigures, parse_args, queue_over_http, report, run_figures
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.worker.event_file import EventFile, read_event_file
from tests.worker_support import horde_with_users

# One slot, image jobs 0-1, 1.01-2.01, 2.02-3.02 (child stamps); with alchemy, forms end at 0.5, 2.5 and 4.0.
JOBS = [(0.0, 1.0), (1.01, 2.01), (2.02, 3.02)]
FORMS = [("nsfw", 0.2, 0.5), ("interrogation", 1.5, 2.5), ("RealESRGAN_x2plus", 3.1, 4.0)]


def write_run(path: Path, *, alchemy: bool, slow_by: float = 0.0) -> None:
    """The records a one-slot run leaves (each image job `slow_by` s later than the one before), written by
    the worker's own sink; the main process's clock reads the made-up times."""
    now = [0.0]
    events, sink = EventLog(clock=lambda: now[0]), EventFile(path)
    events.add_sink(sink)
    for index, (started, finished) in enumerate(JOBS):
        key, shift = f"job-{index}", index * slow_by
        now[0] = finished + shift + 0.01
        events.emit(
            "inference_finished", key, slot=0, ok=True, started_at=started + shift, finished_at=finished + shift
        )
        now[0] += 0.25 * (index + 1)  # the safety verdicts take 0.25, 0.5 and 0.75 s
        events.emit("job_checked", key, censored=False)
        events.emit("job_ended", key, state="submitted")
    for index, (form, popped, ended) in enumerate(FORMS if alchemy else []):
        now[0] = popped
        events.emit("form_popped", f"form-{index}", form=form, lane="analysis")
        now[0] = ended
        events.emit("form_ended", f"form-{index}", form=form, state="submitted", reward=1.0)
    sink.close()


def figures(tmp_path: Path, name: str, *, alchemy: bool, slow_by: float = 0.0) -> RunFigures:
    path = tmp_path / f"{name}.jsonl"
    write_run(path, alchemy=alchemy, slow_by=slow_by)
    return run_figures(read_event_file(path), 10.0, alchemy)


def test_forms_are_counted_within_the_image_window_and_over_the_run(tmp_path: Path) -> None:
    on = figures(tmp_path, "on", alchemy=True)
    assert on.duty == pytest.approx(3.0 / 3.02)
    assert on.window_s == pytest.approx(3.02)
    assert (on.forms_in_window, on.forms_submitted, on.forms_faulted) == (2, 3, 0)  # the last ended at 4.0
    assert on.forms_in_window_by_lane == {"analysis": 2}
    assert on.forms_span_s == pytest.approx(4.0 - 0.2)
    assert on.images_per_min == pytest.approx(60 * 3 / 3.02)
    assert on.check_wait_s == pytest.approx((0.5, 0.75))  # p50 and p95 of 0.25, 0.5, 0.75


def test_the_report_gives_every_pair_and_the_verdict_against_the_five_percent_bar(tmp_path: Path) -> None:
    args = parse_args(["--repeats", "2"])
    off = figures(tmp_path, "off", alchemy=False)
    fine = figures(tmp_path, "fine", alchemy=True)
    text = report([(off, fine), (off, fine)], args, ("1.00 / 1.00 / 1.00", "2.00 / 2.00 / 2.00"))
    assert "--repeats 2 --jobs 50 --seconds-per-job 1.5 --threads 2" in text
    assert "| Duty ratio on / off | 1.0000 (1.0000-1.0000) |" in text
    assert "meets the bar" in text
    slow = figures(tmp_path, "slow", alchemy=True, slow_by=0.1)  # 0.2 s of 3.22 idle: duty 0.93
    assert slow.duty == pytest.approx(3.0 / 3.22)
    text = report([(off, fine), (off, slow)], args, ("1", "2"))
    assert "The lowest duty ratio, 0.9379, MISSES the bar" in text


async def test_requests_are_queued_through_the_requester_api() -> None:
    args = parse_args(["--jobs", "3", "--requests", "2", "--forms", "nsfw,RealESRGAN_x2plus", "--source-size", "64"])
    async with horde_with_users() as (horde, _, requester):
        await queue_over_http(horde, requester.api_key, args, alchemy=True)
        assert len(horde.state.requests) == 3
        interrogations = list(horde.state.alchemy.interrogations.values())
        assert len(interrogations) == 2 and {(i.width, i.height) for i in interrogations} == {(64, 64)}
        forms = [form for i in interrogations for form in horde.state.alchemy.forms_of(i)]
        assert sorted(form.name for form in forms) == ["RealESRGAN_x2plus"] * 2 + ["nsfw"] * 2
        assert {form.state for form in forms} == {FormState.WAITING}
