"""Pipeline intake and dispatch, its children in this process: LoRAs fetched before queueing; a job goes to
the slot holding its model; a failed job leaves its slot holding none; crashes strike the model."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.events import Event, EventKind
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.pipeline import Pipeline
from horde_worker_regen.processes.messages import RunJob
from horde_worker_regen.scheduling.breaker import Subject
from tests.jobs.conftest import PipelineFactory
from tests.models.civitai_server import FakeCivitai, civitai_server

TIMEOUT = 30.0


def key_of(name: str) -> str:
    """The id (a UUID, as the horde's) of the test's job `name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def name_of(key: str | None) -> str:
    """The test's name of the job with id `key`."""
    return next(name for name in JOB_NAMES if key_of(name) == key)


JOB_NAMES = [*(f"{prefix}{n}" for prefix in "jbhpx" for n in range(1, 4))]


def _job(key: str, model: str, payload: dict[str, Any] | None = None, prompt: str = "a fox") -> PoppedJob:
    spec = GenerationSpec(
        key, model, prompt, 64, 64, 2, 1, 1, "k_euler", 7.0, False, None, (), "txt2img", payload or {}
    )
    return PoppedJob((key,), (None,), 150, spec, SourceRefs(), False)


def _is(kind: str, name: str | None = None) -> Callable[[Event], bool]:
    """An event predicate: of `kind`, and of the job `name` when given."""
    return lambda event: event.kind == kind and (name is None or event.job == key_of(name))


def _jobs(pipeline: Pipeline, kind: EventKind) -> list[str]:
    """The names of the jobs of the events of `kind`, in order."""
    return [name_of(event.job) for event in pipeline.events.of_kind(kind)]


async def test_a_job_goes_to_the_slot_holding_its_model(pipelines: PipelineFactory) -> None:
    pipeline, children = await pipelines(3, hold=True)
    pipeline.slots.slots[0].model, pipeline.slots.slots[1].model = "B", "A"
    pipeline.job_popped(_job(key_of("j1"), "A"), time.monotonic())
    pipeline.job_popped(_job(key_of("j2"), "C"), time.monotonic())
    placed = {name_of(event.job): event.fields["slot"] for event in pipeline.events.of_kind("job_started")}
    assert placed == {"j1": 1, "j2": 2}  # C loads into the empty slot, not over B
    sent = {name_of(message.spec.job_key): child for child, message in children.sent if isinstance(message, RunJob)}
    assert sent == {"j1": "inference-2#3", "j2": "inference-3#4"}  # safety is #1, inference-1 #2
    assert [slot.model for slot in pipeline.slots.slots] == ["B", "A", "C"]
    assert pipeline.slots.views()[1].idle is False


async def test_a_failed_job_leaves_its_slot_holding_no_model(pipelines: PipelineFactory) -> None:
    pipeline, _ = await pipelines(1)
    pipeline.job_popped(_job(key_of("j1"), "A", prompt="a fox <fake:fail>"), time.monotonic())
    assert [slot.model for slot in pipeline.slots.slots] == ["A"]
    finished = await pipeline.events.wait_for(_is("inference_finished", "j1"), TIMEOUT)
    assert finished.fields["ok"] is False
    assert pipeline.slots.slots[0].model is None
    assert pipeline.slots.slots[0].idle


async def test_with_no_retries_a_job_lost_with_its_process_still_strikes_its_model(
    pipelines: PipelineFactory,
) -> None:
    pipeline, _ = await pipelines(1, job_retries=0, quarantine_model_after_strikes=2)
    for key in ("j1", "j2"):  # j2 waits for the child j1 crashes, then crashes its replacement
        pipeline.job_popped(_job(key_of(key), "A", prompt="a fox <fake:crash>"), time.monotonic())
    withdrawn = await pipeline.events.wait_for(_is("subject_withdrawn"), TIMEOUT)
    assert name_of(withdrawn.job) == "j2" and withdrawn.fields["subject"] == "model 'A'"
    faults = {name_of(event.job): event.fields["reason"] for event in pipeline.events.of_kind("job_faulted")}
    assert set(faults) == {"j1", "j2"}
    assert all("it was lost with every process it ran on (1)" in reason for reason in faults.values())
    assert [event.fields["child"] for event in pipeline.events.of_kind("job_started")] == [
        "inference-1#2",
        "inference-1#3",
    ]
    assert pipeline.guard.breaker.withdrawn[Subject("A")].cause.kind == "crashing_model"
    assert pipeline.offer(["A", "B"]) == ["B"]


async def test_loras_are_fetched_before_the_job_is_queued_and_failures_reported(
    pipelines: PipelineFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeCivitai()
    fake.add(11, b"lora bytes")
    async with civitai_server(fake) as api_url, aiohttp.ClientSession() as session:
        monkeypatch.setenv("HORDE_CIVITAI_API_URL", api_url)
        loras = LoraFetcher(tmp_path, Downloader(session), max_cache_gb=10, timeout_s=30)
        pipeline, children = await pipelines(1, hold=True, loras=loras)
        payload = {"loras": [{"name": "11", "is_version": True}, {"name": "12", "is_version": True}]}
        record = pipeline.job_popped(_job(key_of("j1"), "A", payload), time.monotonic())
        assert pipeline.events.of_kind("job_queued") == []  # its LoRAs are being fetched
        started: Event = await pipeline.events.wait_for(_is("job_started", "j1"), TIMEOUT)
    assert started.fields["slot"] == 0
    [sent] = [message for _, message in children.sent if isinstance(message, RunJob)]
    assert [entry["name"] for entry in sent.spec.payload["loras"]] == ["11"]
    assert Path(sent.spec.lora_files["11"]).read_bytes() == b"lora bytes"
    assert record.gen_metadata == [{"type": "lora", "value": "download_failed", "ref": "12"}]
