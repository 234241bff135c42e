"""One fake NVML, the whole worker, every view: /status.json, /metrics, the web page and the terminal UI
(attached over HTTP, and in the worker's own process as `run --tui` reads it) show the same GPUs.

The worker runs in this process against the local horde, its children on threads; only NVML is the fake
(two cards, the older one without a power sensor), handed to the worker where it would load the real one.
The worker's slot runs on GPU 0 (the fake backend's one simulated GPU); GPU 1 is shown as not used.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from horde_worker_regen.tui.app import WorkerMonitor
from horde_worker_regen.tui.local_source import LocalStatusSource
from horde_worker_regen.tui.source import HttpStatusSource, StatusSource
from tests.dashboard.browser import headless_chromium, text_of, wait_until
from tests.devices.fake_nvml import two_gpus
from tests.tui.screen import screen_text
from tests.worker_support import WorkerInProcess, horde_with_users, until_true, worker_folder

NEVER_S = 3600.0  # the terminal UI refreshes only when the test asks


async def _tui_screen(source: StatusSource) -> str:
    app = WorkerMonitor(source, interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        return screen_text(app)


def _page_gpus(url: str) -> str:
    with headless_chromium() as driver:
        driver.get(url)
        wait_until(driver, lambda d: "RTX 4090" in text_of(d, "gpus"), "the GPU rows")
        return text_of(driver, "gpus")


async def test_a_fake_nvml_reaches_the_status_json_metrics_page_and_terminal_ui(tmp_path: Path) -> None:
    nvml = two_gpus()
    async with horde_with_users() as (horde, owner, _):
        on_gpu_0 = {"seconds_per_job": 0.0, "devices": [{"name": "NVIDIA GeForce RTX 4090", "vram_mb": 24_564}]}
        folder = worker_folder(tmp_path, horde, owner, fake_backend=on_gpu_0)
        worker = WorkerInProcess(folder, burst=False, nvml=lambda: nvml)
        async with worker.running() as run:
            await until_true(lambda: worker.worker.dashboard is not None, "the dashboard to listen")
            sources = worker.worker.dashboard_sources
            assert sources is not None and sources.telemetry is not None
            telemetry = sources.telemetry
            await until_true(lambda: telemetry.sampled_at is not None, "the first telemetry sample")
            dashboard = worker.worker.dashboard
            assert dashboard is not None and dashboard.url is not None
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{dashboard.url}status.json") as response:
                    status = await response.json()
                async with session.get(f"{dashboard.url}metrics") as response:
                    metrics = await response.text()
            page = await asyncio.to_thread(_page_gpus, dashboard.url)
            attached = await _tui_screen(HttpStatusSource(dashboard.url))
            in_process = await _tui_screen(LocalStatusSource(lambda: worker.worker.dashboard_sources))
            worker.worker.request_stop("test done", 0)
            assert await run == 0
    assert status["telemetry"]["available"] is True
    assert [(gpu["name"], gpu["power_w"], gpu["used"]) for gpu in status["telemetry"]["gpus"]] == [
        ("NVIDIA GeForce RTX 4090", 300.0, True),
        ("NVIDIA GeForce GTX 1070", None, False),
    ]
    assert 'horde_worker_gpu_power_watts{gpu="0",name="NVIDIA GeForce RTX 4090"} 300.0' in metrics
    assert 'horde_worker_gpu_power_watts{gpu="1"' not in metrics  # not reported: a gap, never a false 0
    assert "0: NVIDIA GeForce RTX 4090 10.0 GB / 24.0 GB 87 % 66 °C 300 W / 450 W" in page
    assert "1: NVIDIA GeForce GTX 1070 (not used) 2.0 GB / 8.0 GB" in page
    for screen in (attached, in_process):
        assert "GPU0 VRAM 10.0/24.0 GB" in screen and "300/450 W" in screen, screen
        assert "GPU1 VRAM 2.0/8.0 GB" in screen and "not used" in screen, screen
    assert worker.errors == []
