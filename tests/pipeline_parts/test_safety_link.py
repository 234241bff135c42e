"""The safety link over a fake child client: checks resent to a replacement, abandoned, the give-up."""

from __future__ import annotations

import asyncio

import pytest

from horde_worker_regen.jobs.spec import CensorPolicy
from horde_worker_regen.pipeline.lifecycle import ChildState
from horde_worker_regen.pipeline.safety_link import MAX_SAFETY_ATTEMPTS, SafetyLink
from horde_worker_regen.processes import restarts
from horde_worker_regen.processes.messages import CheckImages
from horde_worker_regen.processes.supervisor import ChildSpec
from tests.pipeline_parts.fakes import FakeChildren

SPEC = ChildSpec("safety", print, None)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "RESTART_BACKOFF_BASE_S", 0.0)


def _check(key: str) -> CheckImages:
    return CheckImages(0, key, "a fox", 64, 64, (b"png",), CensorPolicy(censor_nsfw=False, censorlist_hit=False))


class Recorder:
    """What the link reports, with a future for each kind of report."""

    def __init__(self) -> None:
        self.abandoned: list[tuple[str, str]] = []
        self.gave_up: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_abandoned(self, key: str, reason: str) -> None:
        self.abandoned.append((key, reason))

    def on_give_up(self, reason: str) -> None:
        self.gave_up.set_result(reason)


async def _started(children: FakeChildren, recorder: Recorder) -> SafetyLink:
    link = SafetyLink(children, SPEC, recorder.on_abandoned, recorder.on_give_up)
    await link.start()
    return link


async def _replaced(children: FakeChildren, link: SafetyLink) -> None:
    """Lose the current child and wait until its replacement is up and has been sent what was pending."""
    replacement = children.next_start()
    link.lost("it exited with code -9")
    assert (link.seat.state, link.handle) == (ChildState.LOST, None)
    fresh = await asyncio.wait_for(replacement, 5)
    assert (link.seat.state, link.handle) == (ChildState.READY, fresh)


async def test_checks_pending_when_the_child_is_lost_go_to_its_replacement() -> None:
    children, recorder = FakeChildren(), Recorder()
    link = await _started(children, recorder)
    link.check(_check("a"))
    link.check(_check("b"))
    assert link.answered("a") and not link.answered("a")  # a duplicate answer is ignored
    await _replaced(children, link)
    sent = [(handle.incarnation, check.job_key, check.incarnation) for handle, check in children.of_type(CheckImages)]
    assert sent == [(1, "a", 1), (1, "b", 1), (2, "b", 2)]  # only the unanswered one, tagged anew
    assert recorder.abandoned == []


async def test_a_check_pending_through_every_attempt_is_abandoned() -> None:
    children, recorder = FakeChildren(), Recorder()
    link = await _started(children, recorder)
    link.check(_check("poison"))
    for _ in range(MAX_SAFETY_ATTEMPTS - 1):
        await _replaced(children, link)
    assert recorder.abandoned == []
    link.lost("it exited with code -11")
    assert recorder.abandoned == [("poison", "the safety check failed 3 times (it exited with code -11)")]
    assert not link.answered("poison")


async def test_a_safety_child_that_cannot_be_restarted_abandons_every_check_and_gives_up() -> None:
    children, recorder = FakeChildren(), Recorder()
    link = await _started(children, recorder)
    link.check(_check("a"))
    children.failing_starts = 3
    link.lost("it exited with code 1")
    assert await asyncio.wait_for(recorder.gave_up, 5) == "the safety process could not be restarted after 3 attempts"
    assert recorder.abandoned == [("a", "the safety process could not be restarted")]
    assert link.seat.state is ChildState.FAILED


async def test_after_shutdown_begins_a_lost_safety_child_is_not_replaced() -> None:
    children, recorder = FakeChildren(), Recorder()
    link = await _started(children, recorder)
    link.stop_restarting()
    link.lost("it exited with code 0")
    assert link.seat.state is ChildState.STOPPED and not link.seat.restarting and len(children.started) == 1
