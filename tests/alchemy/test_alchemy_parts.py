"""The alchemist's small parts alone: the form's state machine, the book of forms, its figures, the exit line."""

from __future__ import annotations

import pytest

from horde_worker_regen.jobs.form_record import FORM_TRANSITIONS, FormRecord, FormState, InvalidFormTransition
from horde_worker_regen.pipeline.alchemy.book import FormBook
from horde_worker_regen.pipeline.alchemy.stats import AlchemyStats, FormProblem
from horde_worker_regen.status.console import format_alchemy_summary


def _record(form_id: str = "f-1", form: str = "caption", popped_at: float = 0.0) -> FormRecord:
    return FormRecord(form_id, form, {}, "https://r2.example/s.png", None, popped_at)


def test_every_terminal_state_is_final_and_every_state_can_be_dropped() -> None:
    for state, allowed in FORM_TRANSITIONS.items():
        assert (not allowed) == state.is_terminal
        assert state.is_terminal or FormState.DROPPED in allowed


def test_a_form_reported_faulted_never_becomes_submitted() -> None:
    record = _record()
    record.move_to(FormState.REPORTING, 1.0)
    record.move_to(FormState.FAULTED, 2.0)
    with pytest.raises(InvalidFormTransition):
        record.move_to(FormState.SUBMITTED, 3.0)
    assert record.deadline == 180.0 and record.lane == "analysis"


def test_the_book_counts_forms_by_lane_and_empties_as_they_end() -> None:
    book, changes = FormBook(clock=lambda: 5.0), []
    book.subscribe(lambda record, previous: changes.append((record.form_id, previous, record.state)))
    caption, upscale = _record("a"), _record("b", "RealESRGAN_x4plus", popped_at=1.0)
    assert book.add(caption) and book.add(upscale) and not book.add(_record("a"))
    book.move(upscale, FormState.QUEUED)
    book.move(caption, FormState.QUEUED)
    book.move(caption, FormState.RUNNING)
    assert (book.held("analysis"), book.running("analysis"), book.waiting("post_processing")) == (1, 1, 1)
    assert book.held_by_form() == {"caption": 1, "RealESRGAN_x4plus": 1}
    assert [record.form_id for record in book.in_state(FormState.QUEUED, FormState.RUNNING)] == ["a", "b"]
    book.move(caption, FormState.REPORTING)
    assert book.held("analysis") == 0 and len(book) == 2
    book.move(caption, FormState.SUBMITTED)
    book.move(upscale, FormState.DROPPED)
    assert len(book) == 0 and book.get("a") is None
    assert changes[-1] == ("b", FormState.QUEUED, FormState.DROPPED)


def test_the_exit_line_tells_forms_and_kudos_by_form() -> None:
    stats = AlchemyStats()
    stats.count(_record("a", "caption"), FormState.SUBMITTED, 1.0)
    stats.count(_record("b", "RealESRGAN_x4plus"), FormState.SUBMITTED, 6.0)
    stats.count(_record("c", "RealESRGAN_x4plus"), FormState.SUBMITTED, 3.0)
    stats.count(_record("d", "nsfw"), FormState.FAULTED, 0.0)
    stats.count(_record("e", "nsfw"), FormState.DROPPED, 0.0, "its deadline passed before it could be reported")
    assert format_alchemy_summary(stats) == (
        "Alchemy: 3 forms done (RealESRGAN_x4plus 2, caption 1), 1 faulted (nsfw 1), 1 dropped (nsfw 1), "
        "10.0 kudos (RealESRGAN_x4plus 9.0, caption 1.0)"
    )
    assert format_alchemy_summary(AlchemyStats()) == "Alchemy: 0 forms done, 0 faulted, 0 dropped, 0.0 kudos"


class _Clocks:
    def __init__(self) -> None:
        self.now, self.wall = 500.0, 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall


def test_the_figures_hold_counts_and_kudos_by_form_the_hourly_rate_and_the_last_problem() -> None:
    clocks = _Clocks()
    stats = AlchemyStats(clocks.monotonic, clocks.time)
    clocks.now += 600.0  # ten minutes in: 12 kudos make 72 an hour
    stats.count(_record("a", "interrogation"), FormState.SUBMITTED, 3.0)
    stats.count(_record("b", "RealESRGAN_x2plus"), FormState.SUBMITTED, 9.0)
    failed = _record("c", "RealESRGAN_x2plus")
    failed.fault_reason = "its post-processor returned no image"
    stats.count(failed, FormState.FAULTED, 0.0)
    figures = stats.figures()
    assert (figures.done, figures.faulted, figures.dropped, figures.kudos) == (2, 1, 0, 12.0)
    assert figures.kudos_per_hour == pytest.approx(72.0)
    assert figures.by_form == {
        "RealESRGAN_x2plus": {"done": 1, "faulted": 1, "dropped": 0},
        "interrogation": {"done": 1, "faulted": 0, "dropped": 0},
    }
    assert figures.kudos_by_form == {"interrogation": 3.0, "RealESRGAN_x2plus": 9.0}
    assert figures.last_problem == FormProblem(
        clocks.wall, "c", "RealESRGAN_x2plus", "faulted", "its post-processor returned no image"
    )
    clocks.now += 3601.0  # over an hour later the rate has nothing left to count; the totals stay
    later = stats.figures()
    assert (later.kudos_per_hour, later.kudos, later.done) == (0.0, 12.0, 2)
    assert later.as_json()["last_problem"]["reason"] == "its post-processor returned no image"
