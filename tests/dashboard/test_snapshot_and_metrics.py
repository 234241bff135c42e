"""The snapshot, /status.json and /metrics show the worker's own figures, and pause really stops popping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.inference.capabilities import HORDELIB_CAPABILITIES
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.models.progress import DownloadProgress
from horde_worker_regen.processes.messages import ChildReady, JobProgress
from horde_worker_regen.status.console import format_status
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from tests.dashboard.conftest import MODEL, Parts, build_parts
from tests.jobs.test_record import make_record
from tests.worker.test_bridge_claim import EIGHT, FilesDouble

DATA = BridgeData(api_key="k" * 22, dreamer_name="Dashboard Dreamer", max_threads=2, queue_size=1)


def _job(key: str, steps: int = 10) -> PoppedJob:
    spec = GenerationSpec(key, MODEL, "a fox", 512, 512, steps, 1, 1, "k_euler", 7.0, False, None, (), "txt2img")
    return PoppedJob((key,), (None,), 300, spec, SourceRefs(), False)


def _finished_on_slot(parts: Parts, key: str, slot: int, seconds: float, reward: float) -> None:
    """A job that ran `seconds` on `slot` and was submitted, as the pipeline records it."""
    record = make_record(key, images=2)
    record.state, record.slot = JobState.SUBMITTED, slot
    record.started_at, record.finished_at = parts.clock.now - seconds, parts.clock.now
    record.results = {0: IdResult(IdOutcome.SUBMITTED, reward), 1: IdResult(IdOutcome.SUBMITTED, 0.0)}
    parts.stats.job_ended(record)


def jobs_in_flight(parts: Parts) -> None:
    """Two jobs running on the slots (run-0 at step 4 of 10), one dropped as too late, one waiting."""
    for key in ("run-0", "run-1", "late", "waiting"):
        parts.pipeline.job_popped(_job(key), parts.clock.now)
    late = parts.pipeline.registry.get("late")
    assert late is not None and late.state is JobState.QUEUED
    parts.pipeline.drop(late, "its deadline passed before a slot was free")
    handle = parts.pipeline.slots.slots[0].handle
    assert handle is not None
    parts.pipeline.on_child_message(handle, JobProgress(1, "run-0", 4, 10))


def _busy_worker(parts: Parts) -> None:
    """Two jobs running (one at step 4 of 10), one dropped, one waiting, one submitted, one download."""
    parts.clock.now += 30.0
    _finished_on_slot(parts, "done", slot=0, seconds=20.0, reward=12.5)
    jobs_in_flight(parts)
    parts.sources.downloads.store.downloader.progress["model.safetensors"] = DownloadProgress(
        "model.safetensors", 1000, done_bytes=250, started_at=parts.clock.now - 5, now=parts.clock.now
    )
    parts.clock.now += 10.0


@asynccontextmanager
async def _client(parts: Parts) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    async with TestClient(TestServer(dashboard_app(parts.sources, token=None))) as client:
        yield client


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_snapshot_shows_slots_steps_queue_models_downloads_and_faults(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    _busy_worker(parts)
    snap = build_snapshot(parts.sources)
    first, second = snap["slots"]
    assert (first["state"], first["model"], first["job"]["job"], first["step"], first["total_steps"]) == (
        "busy",
        MODEL,
        "run-0",
        4,
        10,
    )
    assert (second["job"]["job"], second["step"], second["total_steps"]) == ("run-1", 0, 0)
    assert second["state"] == "busy"
    uptime = snap["worker"]["uptime_s"]
    assert uptime == pytest.approx(40.0)
    assert first["duty"] == pytest.approx((20.0 + 10.0) / 40.0)  # the finished job plus 10 s of the current one
    assert [job["job"] for job in snap["queue"]] == ["waiting"]
    assert snap["models"]["on_disk"] == [MODEL]
    assert snap["models"]["in_memory"] == [{"slot": 0, "model": MODEL}, {"slot": 1, "model": MODEL}]
    assert snap["downloads"] == [
        {
            "file": "model.safetensors",
            "done_bytes": 250,
            "total_bytes": 1000,
            "bytes_per_second": 50.0,
            "eta_s": 15.0,
            "error": None,
        }
    ]
    assert [(f["job"], f["outcome"], f["reason"]) for f in snap["faults"]] == [
        ("late", "dropped", "its deadline passed before a slot was free")
    ]
    figures = parts.stats.snapshot()
    assert snap["totals"]["kudos_session"] == figures.kudos_session == 12.5
    assert snap["totals"]["megapixelsteps_per_second"] == pytest.approx(figures.megapixelsteps_per_second)
    assert (snap["totals"]["jobs"], snap["totals"]["dropped"]) == (1, 1)
    assert snap["worker"] == {
        "name": "Dashboard Dreamer",
        "roles": ["dreamer"],
        "uptime_s": uptime,
        "paused": False,
        "stopping": False,
        "maintenance_message": None,
        "state": "serving",
        "horde_url": DATA.horde_url,
        "horde_messages": [],
    }
    assert snap["totals"]["kudos_credited"] is None  # not read from the horde yet
    assert snap["alchemy"] is None  # alchemist: false


async def test_a_finished_job_clears_its_slot_step(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    _busy_worker(parts)
    slot = parts.pipeline.slots.slots[0]
    slot.release()
    assert (slot.step, slot.total_steps) == (0, 0)


async def test_status_json_and_metrics_carry_the_same_figures(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    _busy_worker(parts)
    async with _client(parts) as client:
        status = await (await client.get("/status.json")).json()
        response = await client.get("/metrics")
        assert response.status == 200 and response.content_type == "text/plain"
        samples = _metrics(await response.text())
    figures = parts.stats.snapshot()
    assert status == build_snapshot(parts.sources)
    assert samples[("horde_worker_jobs_total", ())] == figures.jobs == 1
    assert samples[("horde_worker_dropped_total", ())] == figures.dropped == 1
    assert samples[("horde_worker_kudos_total", ())] == figures.kudos_session
    assert samples[("horde_worker_megapixelsteps_total", ())] == pytest.approx(parts.stats.megapixelsteps)
    assert samples[("horde_worker_megapixelsteps_per_second", ())] == pytest.approx(figures.megapixelsteps_per_second)
    assert samples[("horde_worker_kudos_per_hour", ())] == pytest.approx(figures.kudos_per_hour)
    assert samples[("horde_worker_uptime_seconds", ())] == pytest.approx(figures.uptime)
    assert samples[("horde_worker_queued_jobs", ())] == 1
    assert samples[("horde_worker_slot_step", (("slot", "0"),))] == 4
    assert samples[("horde_worker_slot_busy", (("slot", "1"),))] == 1
    assert samples[("horde_worker_slot_duty_ratio", (("slot", "0"),))] == pytest.approx(0.75)
    assert samples[("horde_worker_paused", ())] == 0


async def test_the_bridge_level_and_its_kudos_factor_show_in_status_json_and_metrics(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    files = FilesDouble(ready=EIGHT - {"RestoreFormer"}, bytes_to_download=290_785_322)
    claim = BridgeClaim(HORDELIB_CAPABILITIES, True, EventLog(), files=files, servable=lambda: EIGHT)
    claim.follow(lambda level: parts.stats.claim_level(level.level, level.kudos_factor, level.reason))
    claim.follow(lambda level: parts.popper.set_bridge_agent(level.agent))
    claim.announce()
    async with _client(parts) as client:
        status = await (await client.get("/status.json")).json()
        files.ready, files.bytes_to_download = EIGHT, 0
        claim.files_changed(files.ready)
        raised = await (await client.get("/status.json")).json()
        samples = _metrics(await (await client.get("/metrics")).text())
    assert status["bridge"] == {
        "level": 9,
        "agent": "AI Horde Worker reGen:9:https://github.com/Haidra-Org/horde-worker-reGen",
        "kudos_factor": 0.9,
        "reason": "level 13 once 1 level-13 post-processor is on disk and verified (RestoreFormer, 291 MB to download)",
    }
    assert status["totals"]["kudos_factor"] == 0.9
    assert (raised["bridge"]["level"], raised["bridge"]["kudos_factor"], raised["totals"]["kudos_factor"]) == (
        13,
        1.0,
        1.0,
    )
    assert raised["bridge"]["agent"].startswith("AI Horde Worker reGen:13:")
    assert samples[("horde_worker_bridge_level", ())] == 13
    assert samples[("horde_worker_kudos_bridge_factor", ())] == 1.0


async def test_status_json_shows_the_gpu_or_cpu_each_slot_child_came_up_on(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA, slots=3)
    pinned, on_cpu, _never_up = parts.pipeline.slots.slots
    assert pinned.handle is not None and on_cpu.handle is not None
    pinned.ready = ChildReady(1, 101, "hordelib", DeviceReport(1, "NVIDIA RTX 4090", 24564, 23000))
    on_cpu.ready = ChildReady(1, 102, "hordelib")
    pinned.recycling()  # being recycled: the slot stays pinned to the same GPU
    _never_up.ready = None  # its child never came up
    async with _client(parts) as client:
        status = await (await client.get("/status.json")).json()
    assert [slot["device"] for slot in status["slots"]] == [
        {
            "kind": "gpu",
            "label": "GPU 1 (NVIDIA RTX 4090)",
            "index": 1,
            "name": "NVIDIA RTX 4090",
            "total_mb": 24564,
            "free_mb_at_start": 23000,
        },
        {"kind": "cpu", "label": "CPU"},
        None,
    ]
    # Each slot's lifecycle state as it is: the recycled one is being replaced, the others idle.
    assert [slot["state"] for slot in status["slots"]] == ["replacing", "idle", "idle"]


async def test_pause_and_resume_switch_popping_and_show_everywhere(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _client(parts) as client:
        assert (await (await client.post("/pause")).json()) == {"paused": True}
        assert parts.popper.paused
        status = await (await client.get("/status.json")).json()
        samples = _metrics(await (await client.get("/metrics")).text())
        assert status["worker"]["paused"] is True and samples[("horde_worker_paused", ())] == 1
        assert "PAUSED" in format_status(parts.stats.snapshot(), 0, 2, 0, paused=parts.popper.paused)
        assert (await (await client.post("/resume")).json()) == {"paused": False}
        assert not parts.popper.paused


async def test_maintenance_message_reaches_the_page_data_and_metrics(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    parts.popper.maintenance_message = "This worker has been put into maintenance mode by a moderator"
    async with _client(parts) as client:
        status = await (await client.get("/status.json")).json()
        samples = _metrics(await (await client.get("/metrics")).text())
    assert status["worker"]["maintenance_message"] == parts.popper.maintenance_message
    assert samples[("horde_worker_maintenance", ())] == 1


async def test_the_page_and_its_files_are_served_locally(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _client(parts) as client:
        page = await (await client.get("/")).text()
        assert '<script src="/static/dashboard.js">' in page and "http" not in page.split("<body>")[0]
        for path in ("/static/dashboard.js", "/static/dashboard.css"):
            assert (await client.get(path)).status == 200
        health = await client.get("/healthz")
        assert health.status == 200 and (await health.json()) == {"status": "ok"}


async def test_healthz_says_stopping_once_the_worker_stops(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    stopping = False
    parts.sources.stopping = lambda: stopping
    async with _client(parts) as client:
        assert (await client.get("/healthz")).status == 200
        stopping = True
        response = await client.get("/healthz")
        assert response.status == 503 and (await response.json()) == {"status": "stopping"}
        assert (await (await client.get("/status.json")).json())["worker"]["stopping"] is True
