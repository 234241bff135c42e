"""The one restart-with-backoff every kind of child uses: attempts, growing waits, a clear give-up."""

from __future__ import annotations

import pytest

from horde_worker_regen.processes.handle import ChildHandle, ChildStartError
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.processes.restarts import GaveUp, start_with_retries
from tests.pipeline_parts.children import inference_specs

[SPEC] = inference_specs(1)


@pytest.mark.parametrize(
    ("failing", "waits", "attempts_reported", "started"),
    [
        (0, [], [], True),  # up at once: no wait
        (1, [1.0], [1], True),
        (2, [1.0, 2.0], [1, 2], True),  # exponential backoff between attempts
        (3, [1.0, 2.0], [1, 2, 3], False),  # no wait after the last attempt: the give-up comes at once
        (5, [1.0, 2.0], [1, 2, 3], False),
    ],
)
async def test_a_child_is_started_again_with_backoff_until_it_gives_up(
    failing: int, waits: list[float], attempts_reported: list[int], started: bool, children: InProcessChildren
) -> None:
    children.fail_next_starts(failing, "it exited with code 1")
    slept: list[float] = []
    reported: list[int] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    def failed(attempt: int, error: ChildStartError) -> None:
        reported.append(attempt)

    result = await start_with_retries(children, SPEC, failed, sleep=sleep)
    assert (slept, reported) == (waits, attempts_reported)
    assert isinstance(result, ChildHandle) is started
    if not started:
        assert isinstance(result, GaveUp) and result.attempts == 3 and len(result.errors) == 3
        assert result.last == "inference-1#3: RuntimeError: it exited with code 1"
