"""The safety link over an in-process safety child: checks resent to a replacement, abandoned, the give-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from horde_worker_regen.jobs.spec import CensorPolicy, ImagesToCheck
from horde_worker_regen.pipeline.lifecycle import ChildState
from horde_worker_regen.pipeline.safety_link import MAX_SAFETY_ATTEMPTS, SafetyLink
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.processes.messages import CheckImages
from tests.pipeline_parts.children import WAIT_S, safety_spec, sent_to, started

SPEC = safety_spec()

pytestmark = pytest.mark.usefixtures("no_backoff")


def _check(key: str) -> CheckImages:
    return CheckImages(
        0, ImagesToCheck(key, "a fox", 64, 64, (b"png",), CensorPolicy(censor_nsfw=False, censorlist_hit=False))
    )


class Recorder:
    """What the link reports, with a future for each kind of report."""

    def __init__(self) -> None:
        self.abandoned: list[tuple[str, str]] = []
        self.gave_up: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_abandoned(self, key: str, reason: str) -> None:
        self.abandoned.append((key, reason))

    def on_give_up(self, reason: str) -> None:
        self.gave_up.set_result(reason)


@pytest_asyncio.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def link(children: InProcessChildren, recorder: Recorder) -> AsyncIterator[SafetyLink]:
    """A started link; at the end no replacement is left under way (the children are killed)."""
    started_link = SafetyLink(children, SPEC, recorder.on_abandoned, recorder.on_give_up)
    await started_link.start()
    yield started_link
    started_link.stop_restarting()


def _lose(children: InProcessChildren, link: SafetyLink, reason: str) -> None:
    """The link's child is lost: the client ends it, then tells the link."""
    assert link.handle is not None
    children.kill(link.handle)
    link.lost(reason)


async def _replaced(children: InProcessChildren, link: SafetyLink) -> None:
    """Lose the current child and wait until its replacement is up and has been sent what was pending."""
    lost = link.handle
    assert lost is not None
    replacement = f"safety#{lost.incarnation + 1}"
    _lose(children, link, "it exited with code -9")
    assert (link.seat.state, link.handle) == (ChildState.LOST, None)
    fresh = await started(children, replacement)
    assert (link.seat.state, link.handle) == (ChildState.READY, fresh)


async def test_checks_pending_when_the_child_is_lost_go_to_its_replacement(
    children: InProcessChildren, link: SafetyLink, recorder: Recorder
) -> None:
    link.check(_check("a"))
    link.check(_check("b"))
    assert link.answered("a") and not link.answered("a")  # a duplicate answer is ignored
    await _replaced(children, link)
    sent = [(name, check.job_key, check.incarnation) for name, check in sent_to(children, CheckImages)]
    assert sent == [("safety#1", "a", 1), ("safety#1", "b", 1), ("safety#2", "b", 2)]  # the unanswered, tagged anew
    assert recorder.abandoned == []


async def test_a_check_pending_through_every_attempt_is_abandoned(
    children: InProcessChildren, link: SafetyLink, recorder: Recorder
) -> None:
    link.check(_check("poison"))
    for _ in range(MAX_SAFETY_ATTEMPTS - 1):
        await _replaced(children, link)
    assert recorder.abandoned == []
    _lose(children, link, "it exited with code -11")
    assert recorder.abandoned == [("poison", "the safety check failed 3 times (it exited with code -11)")]
    assert not link.answered("poison")


async def test_a_safety_child_that_cannot_be_restarted_abandons_every_check_and_gives_up(
    children: InProcessChildren, link: SafetyLink, recorder: Recorder
) -> None:
    link.check(_check("a"))
    children.fail_next_starts(3)
    _lose(children, link, "it exited with code 1")
    assert (
        await asyncio.wait_for(recorder.gave_up, WAIT_S) == "the safety process could not be restarted after 3 attempts"
    )
    assert recorder.abandoned == [("a", "the safety process could not be restarted")]
    assert link.seat.state is ChildState.FAILED


async def test_after_shutdown_begins_a_lost_safety_child_is_not_replaced(
    children: InProcessChildren, link: SafetyLink
) -> None:
    link.stop_restarting()
    _lose(children, link, "it exited with code 0")
    assert link.seat.state is ChildState.STOPPED and not link.seat.restarting
    assert [event.fields["child"] for event in children.events.of_kind("child_started")] == ["safety#1"]
