"""Pipeline intake and dispatch: LoRAs fetched before queueing; a job goes to the slot holding its model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.slot import Slot
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes.messages import JobFailed, RunJob
from horde_worker_regen.processes.supervisor import ChildSpec
from horde_worker_regen.scheduling.breaker import Subject
from tests.models.civitai_server import FakeCivitai, civitai_server


@dataclass(frozen=True)
class StubProcess:
    pid: int | None = None


@dataclass(eq=False)
class StubHandle:
    name: str
    incarnation: int = 1
    process: StubProcess = field(default_factory=StubProcess)


@dataclass
class StubSupervisor:
    """Records what the pipeline sends; every child is up."""

    sent: list[tuple[StubHandle, Any]] = field(default_factory=list)

    def bind(self, on_message: Any, on_lost: Any) -> None:
        self.on_message = on_message

    def send(self, handle: StubHandle, message: Any) -> bool:
        self.sent.append((handle, message))
        return True


def _pipeline(
    slots: int,
    fetcher: Any = None,
    loras: LoraFetcher | None = None,
    data: BridgeData | None = None,
    submitter: Any = None,
) -> tuple[Pipeline, StubSupervisor]:
    supervisor = StubSupervisor()
    spec = ChildSpec("stub", print, None)
    services = PipelineServices(
        supervisor=supervisor,  # type: ignore[arg-type]
        registry=JobRegistry(),
        stats=WorkerStats(),
        submitter=submitter,
        fetcher=fetcher,
        loras=loras,
    )
    settings = PipelineSettings.from_bridge_data(data or BridgeData(api_key="k" * 22))
    pipeline = Pipeline(settings, services, ChildSpecs(spec, [spec] * slots), on_fatal=print)
    for slot in pipeline.slots.slots:
        slot_up(slot, StubHandle(f"inference-{slot.index}"))
    return pipeline, supervisor


def slot_up(slot: Slot, handle: StubHandle) -> None:
    """The slot's child is up (a stub: no process is started)."""
    slot.starting()
    slot.came_up(handle)  # type: ignore[arg-type]


def _job(key: str, model: str, payload: dict[str, Any] | None = None) -> PoppedJob:
    spec = GenerationSpec(
        key, model, "a fox", 64, 64, 2, 1, 1, "k_euler", 7.0, False, None, (), "txt2img", payload or {}
    )
    return PoppedJob((key,), (None,), 150, spec, SourceRefs(), False)


async def test_a_job_goes_to_the_slot_holding_its_model() -> None:
    pipeline, supervisor = _pipeline(3)
    pipeline.slots.slots[0].model, pipeline.slots.slots[1].model = "B", "A"
    pipeline.job_popped(_job("j1", "A"), time.monotonic())
    pipeline.job_popped(_job("j2", "C"), time.monotonic())
    placed = {message.spec.job_key: handle.name for handle, message in supervisor.sent if isinstance(message, RunJob)}
    assert placed == {"j1": "inference-1", "j2": "inference-2"}  # C loads into the empty slot, not over B
    assert [slot.model for slot in pipeline.slots.slots] == ["B", "A", "C"]
    assert pipeline.slots.views()[1].idle is False


async def test_a_failed_job_leaves_its_slot_holding_no_model() -> None:
    pipeline, _ = _pipeline(1)
    pipeline.job_popped(_job("j1", "A"), time.monotonic())
    handle = pipeline.slots.slots[0].handle
    assert handle is not None
    pipeline.on_child_message(handle, JobFailed(1, "j1", "the model did not load", 0.0, 0.0))
    assert pipeline.slots.slots[0].model is None
    assert pipeline.slots.slots[0].idle


async def test_with_no_retries_a_job_lost_with_its_process_still_strikes_its_model() -> None:
    data = BridgeData(api_key="k" * 22, job_retries=0, quarantine_model_after_strikes=2)
    pipeline, _ = _pipeline(1, data=data)
    pipeline.stop_restarting()  # no replacement child: the stub supervisor starts none
    for key in ("j1", "j2"):
        pipeline.job_popped(_job(key, "A"), time.monotonic())
        handle = pipeline.slots.slots[0].handle
        assert handle is not None and pipeline.slots.slots[0].job_key == key
        pipeline.on_child_lost(handle, "killed by signal 9")
        assert pipeline.registry.get(key).fault_reason  # type: ignore[union-attr]
        slot_up(pipeline.slots.slots[0], StubHandle("inference-0", incarnation=2))
    assert pipeline.guard.breaker.withdrawn[Subject("A")].cause.kind == "crashing_model"
    assert pipeline.offer(["A", "B"]) == ["B"]


async def test_loras_are_fetched_before_the_job_is_queued_and_failures_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeCivitai()
    fake.add(11, b"lora bytes")
    async with civitai_server(fake) as api_url, aiohttp.ClientSession() as session:
        monkeypatch.setenv("HORDE_CIVITAI_API_URL", api_url)
        loras = LoraFetcher(tmp_path, Downloader(session), max_cache_gb=10, timeout_s=30)
        pipeline, supervisor = _pipeline(1, fetcher=InputFetcher(None), loras=loras)  # type: ignore[arg-type]
        payload = {"loras": [{"name": "11", "is_version": True}, {"name": "12", "is_version": True}]}
        record = pipeline.job_popped(_job("j1", "A", payload), time.monotonic())
        started = asyncio.Event()
        pipeline.registry.subscribe(lambda changed, previous: started.set() if changed.slot is not None else None)
        await asyncio.wait_for(started.wait(), 10)
    sent = [message for _, message in supervisor.sent if isinstance(message, RunJob)]
    assert [entry["name"] for entry in sent[0].spec.payload["loras"]] == ["11"]
    assert Path(sent[0].spec.lora_files["11"]).read_bytes() == b"lora bytes"
    assert record.gen_metadata == [{"type": "lora", "value": "download_failed", "ref": "12"}]
