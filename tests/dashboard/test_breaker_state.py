"""What the fault breaker withdrew reaches /status.json, the status line and the next pop request."""

from __future__ import annotations

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.jobs.spec import FailureKind, GenerationFailed
from horde_worker_regen.processes.messages import JobFailed
from horde_worker_regen.status.console import format_status
from tests.dashboard.conftest import build_parts
from tests.jobs.test_pipeline_intake import _job
from tests.worker_support import MODEL


async def test_withdrawn_subjects_show_everywhere_and_shape_the_pop(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, BridgeData(api_key="k" * 22, models_to_load=[MODEL]), slots=1)
    pipeline, popper = parts.pipeline, parts.popper
    popper._offer = pipeline.offer  # as the worker wires them
    popper.limit_with(pipeline)
    handle = pipeline.slots.slots[0].handle
    assert handle is not None
    assert popper._request_now().allow_img2img is True
    failures: list[tuple[str, FailureKind, str]] = [
        ("p1", "failing_feature", "img2img"),
        ("p2", "failing_feature", "img2img"),
        ("m1", "missing_model", MODEL),
        ("m2", "missing_model", MODEL),
    ]
    for key, kind, subject in failures:
        pipeline.job_popped(_job(key, MODEL), parts.clock())
        pipeline.on_child_message(handle, JobFailed(1, key, GenerationFailed("it failed", 0.0, 0.0, kind, subject)))
    request = popper._request_now()
    assert request.allow_img2img is False and request.models == []
    breaker = build_snapshot(parts.sources)["breaker"]
    assert breaker["popping_stopped"] is True
    assert {(w["subject"], w["feature"]) for w in breaker["withdrawn"]} == {(MODEL, False), ("img2img", True)}
    line = format_status(parts.stats.snapshot(), 0, 1, 0, stopped=pipeline.guard.popping_stopped)
    assert line.endswith("| NOT POPPING (every model withdrawn)")
    parts.clock.now += 3601.0  # the default cool-down of 60 minutes passes
    assert popper._request_now().models == [MODEL] and not pipeline.guard.popping_stopped
