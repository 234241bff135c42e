"""The job record's state machine and the registry that indexes it."""

from __future__ import annotations

import asyncio

import pytest

from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.record import (
    ALLOWED_TRANSITIONS,
    IdOutcome,
    IdResult,
    InvalidTransition,
    JobRecord,
    JobState,
)
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs

HAPPY_PATH = [
    JobState.INPUTS_FETCHED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.SAFETY,
    JobState.UPLOADING,
    JobState.SUBMITTED,
]


def make_record(key: str = "id-0", images: int = 2, ttl: int = 150, popped_at: float = 10.0) -> JobRecord:
    ids = tuple(f"{key}-{i}" if i else key for i in range(images))
    spec = GenerationSpec(
        key, "Deliberate", "a fox", 512, 768, 30, images, 7, "k_euler", 5.0, True, None, (), "txt2img"
    )
    job = PoppedJob(ids, tuple(f"http://r2/{i}" for i in ids), ttl, spec, SourceRefs(), False)
    return JobRecord.from_pop(job, popped_at)


def test_the_happy_path_is_allowed_and_timed() -> None:
    record = make_record()
    for step, state in enumerate(HAPPY_PATH, start=1):
        record.move_to(state, 10.0 + step)
    assert record.state is JobState.SUBMITTED
    assert record.entered[JobState.RUNNING] == 13.0
    assert record.deadline == 160.0
    assert record.megapixelsteps == pytest.approx(512 * 768 * 30 * 2 / 1e6)


@pytest.mark.parametrize("state", [s for s in JobState if not s.is_terminal])
def test_every_live_state_can_be_dropped_and_terminal_states_are_final(state: JobState) -> None:
    assert JobState.DROPPED in ALLOWED_TRANSITIONS[state]
    assert all(not ALLOWED_TRANSITIONS[s] for s in JobState if s.is_terminal)


def test_skipping_a_stage_is_refused() -> None:
    record = make_record()
    with pytest.raises(InvalidTransition, match="popped → running"):
        record.move_to(JobState.RUNNING, 11.0)
    record.move_to(JobState.UPLOADING, 11.0)  # a fault goes straight to reporting
    with pytest.raises(InvalidTransition):
        record.move_to(JobState.QUEUED, 12.0)


def test_the_final_state_follows_the_outcomes_of_the_ids() -> None:
    record = make_record()
    record.results = {0: IdResult(IdOutcome.SUBMITTED, 5.0), 1: IdResult(IdOutcome.SUBMITTED, 6.0)}
    assert record.final_state() is JobState.SUBMITTED and record.reward == 11.0
    record.fault_reason = "boom"
    record.results = {0: IdResult(IdOutcome.FAULTED), 1: IdResult(IdOutcome.DROPPED)}
    assert record.final_state() is JobState.FAULTED
    record.fault_reason = None
    record.results = {0: IdResult(IdOutcome.SUBMITTED, 5.0), 1: IdResult(IdOutcome.DROPPED)}
    assert record.final_state() is JobState.DROPPED


async def test_the_registry_counts_states_tells_listeners_and_empties() -> None:
    registry = JobRegistry(clock=lambda: 50.0)
    seen: list[tuple[str, JobState, JobState]] = []
    registry.subscribe(lambda record, previous: seen.append((record.key, previous, record.state)))
    first, second = make_record("a"), make_record("b")
    registry.add(first)
    registry.add(second)
    with pytest.raises(ValueError, match="already registered"):
        registry.add(make_record("a"))
    assert registry.waiting == 2 and registry.running == 0
    for state in HAPPY_PATH[:3]:
        registry.move(first, state)
    assert registry.waiting == 1 and registry.running == 1
    assert registry.in_state(JobState.POPPED) == [second]
    registry.move(second, JobState.DROPPED)
    assert registry.get("b") is None and len(registry) == 1
    for state in HAPPY_PATH[3:]:
        registry.move(first, state)
    await asyncio.wait_for(registry.wait_empty(), 1)
    assert seen[0] == ("a", JobState.POPPED, JobState.POPPED)
    assert seen[-1] == ("a", JobState.UPLOADING, JobState.SUBMITTED)
    assert registry.count(*JobState) == 0
