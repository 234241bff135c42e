"""Any value in any field of a pop answer: the worker's real popper and pipeline against the local horde.

One local horde and one worker (popper, pipeline, the children's cores in-process) serve every
example. Each example queues a request and has the horde hand its job out with one field changed
(the `mangle` fault) into another JSON type or shape, or removed. Whatever the value, the worker
reports every id of that job exactly once (faulted with the field named, or done), and keeps popping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from horde_worker_regen.horde.field_checks import is_whole
from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.localhorde import jobs as horde_jobs
from horde_worker_regen.localhorde import submit as horde_submit
from horde_worker_regen.localhorde.entities import WaitingPrompt
from tests.horde.inprocess_worker import WORKER_NAME, InProcessWorker, start_worker
from tests.worker_support import queue

EXAMPLE_TIMEOUT_S = 20.0
MISSING = object()
# Diagnostics and fields the worker does not know: whatever they hold, the job runs.
NEVER_FAULTS = {("skipped",), ("messages",), ("surprise",), ("payload", "surprise"), ("r2_upload",)}
FIELDS: list[tuple[str | int, ...]] = [
    ("payload",), ("model",), ("ttl",), ("id",), ("source_image",), ("source_mask",), ("source_processing",),
    ("extra_source_images",), ("r2_uploads",), ("r2_uploads", 0), *NEVER_FAULTS,
    *(("payload", name) for name in (
        "prompt", "ddim_steps", "n_iter", "seed", "sampler_name", "cfg_scale", "denoising_strength", "width",
        "height", "karras", "tiling", "hires_fix", "post_processing", "loras", "tis", "special", "clip_skip",
        "control_type", "workflow", "extra_texts", "facefixer_strength", "use_nsfw_censor")),
]  # fmt: skip
_SCALARS = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.integers(10**20, 10**40)
            | st.floats() | st.text(max_size=30))  # fmt: skip
VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
) | st.just(MISSING)


class Examples:
    """The running worker, and what the horde received for each id."""

    def __init__(self, worker: InProcessWorker) -> None:
        self.worker = worker
        self.metadata: dict[str, list[dict[str, Any]]] = {}
        self.changed = asyncio.Event()
        self.counter = itertools.count()
        worker.pipeline.registry.subscribe(self._changed)

    def _changed(self, record: JobRecord, previous: JobState) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for `condition`, re-checked whenever a job changes state."""
        async with asyncio.timeout(EXAMPLE_TIMEOUT_S):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def run(self, path: tuple[str | int, ...], value: Any) -> WaitingPrompt:
        horde = self.worker.horde
        # More than 20 faults an hour put a worker into maintenance, as on the horde; its owner lifts it.
        if horde.horde.worker(WORKER_NAME) is not None:
            horde.horde.set_maintenance(WORKER_NAME, False)
        change = {"remove": True} if value is MISSING else {"value": value}
        rule = horde.horde.faults.add(endpoint="pop", kind="mangle", path=list(path), times=1, **change)
        wp = queue(horde, self.worker.requester, f"example {next(self.counter)}")
        state, registry = horde.state, self.worker.pipeline.registry

        def reported() -> bool:
            jobs = state.generations_of(wp)
            return bool(jobs) and all(pg.id in state.submit_attempts for pg in jobs) and not registry

        await self.until(reported)
        assert rule.fired == 1
        return wp

    def check(self, wp: WaitingPrompt, path: tuple[str | int, ...]) -> None:
        state = self.worker.horde.state
        assert not self.worker.task.done(), "the popper stopped"
        for pg in state.generations_of(wp):
            assert len(state.submit_attempts[pg.id]) == 1, f"{pg.id} reported {len(state.submit_attempts[pg.id])}x"
            if path in NEVER_FAULTS:
                assert not pg.faulted, f"a malformed {path} faulted the job"
        rejected = [f for f in self.worker.pipeline.recent_faults if f.job_key == state.generations_of(wp)[0].id
                    and "outside the API contract" in f.reason]  # fmt: skip
        if rejected:
            where = ".".join(str(step) for step in path if isinstance(step, str))
            # Only the ids of the rejected pop: the horde re-queues them, and a later pop of the same
            # request (which a busy machine may make before this check) is a sound job of its own.
            for pg in (pg for pg in state.generations_of(wp) if pg.faulted):
                refs = [entry.get("ref", "") for entry in self.metadata[pg.id] if entry["value"] == "parse_failed"]
                assert any(ref.startswith(where) for ref in refs), f"{refs} do not name {where}"


@pytest.fixture
def gen_metadata_seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """The gen_metadata of every submit the local horde received, by id (faulted ones included)."""
    seen: dict[str, list[dict[str, Any]]] = {}
    original = horde_jobs.set_generation

    def recording(state: Any, reference: Any, pg: Any, submission: Any) -> float:
        seen[pg.id] = list(submission.gen_metadata)
        return original(state, reference, pg, submission)

    monkeypatch.setattr(horde_submit, "set_generation", recording)
    return seen


def test_any_value_in_any_field_is_reported_once_and_the_worker_keeps_popping(
    gen_metadata_seen: dict[str, list[dict[str, Any]]],
) -> None:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    try:
        examples = Examples(loop.run_until_complete(start_worker(stack)))
        examples.metadata = gen_metadata_seen

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(path=st.sampled_from(FIELDS), value=VALUES)
        def example(path: tuple[str | int, ...], value: Any) -> None:
            # A sound but short ttl is a deadline test, not a parsing one.
            assume(not (path == ("ttl",) and is_whole(value) and 0 < value < 600))
            examples.check(loop.run_until_complete(examples.run(path, value)), path)

        example()
        sound = queue(examples.worker.horde, examples.worker.requester, "a sound job after them all")
        state, registry = examples.worker.horde.state, examples.worker.pipeline.registry
        loop.run_until_complete(
            examples.until(lambda: any(pg.is_completed for pg in state.generations_of(sound)) and not registry)
        )
        assert [pg.faulted for pg in state.generations_of(sound)] == [False]
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
