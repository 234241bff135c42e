"""The GPU section, kudos per kWh and the identity line in a real browser, fed by a fake NVML.

The dashboard runs in this process on a real pipeline (fake backends) with the telemetry sampler on
two scripted GPUs, one without a power sensor and not used by the worker; the page must show each GPU's
figures (the unused one dimmed), follow a new sample, and name the horde, its version, this worker's id
and the fake backend as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from aiohttp.test_utils import TestServer
from selenium import webdriver
from selenium.webdriver.common.by import By

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.identity import FAKE_BACKEND_LABEL
from horde_worker_regen.devices.telemetry import HostReading
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.worker.telemetry_sampler import TelemetrySampler
from tests.dashboard.browser import headless_chromium, text_of, wait_until
from tests.dashboard.conftest import Parts, build_parts
from tests.devices.fake_nvml import FakeNvml, two_gpus
from tests.jobs.test_record import make_record

DATA = BridgeData(api_key="browser-telemetry-key1", dreamer_name="GPU Dreamer", inference_backend="fake")
HOST = HostReading(cpu_pct=12.5, ram_used_mb=6_144.0, ram_total_mb=32_768.0)
WORKER_ID = "a3c6e0d6-6b46-4e2e-9a57-0e1f7f3c5b11"


async def _fed_by(parts: Parts, nvml: FakeNvml, session: aiohttp.ClientSession) -> TelemetrySampler:
    parts.sources.telemetry = telemetry = Telemetry(used_gpus=frozenset({0}))  # the 1070 is not the worker's
    sampler = TelemetrySampler(telemetry, 5.0, nvml=lambda: nvml, host=lambda: HOST, clock=parts.clock)
    watch = HordeIdentityWatch(HordeClient(session, DATA.horde_url, "x"), DATA.dreamer_name)
    watch.horde_version, watch.worker_id = "4.47.1", WORKER_ID
    parts.sources.horde_identity = watch
    await sampler.open()
    await sampler.sample()
    parts.clock.now += 60.0
    await sampler.sample()  # a minute at 300 W: 5 Wh
    record = make_record("paid", images=1)
    record.state, record.slot, record.started_at, record.finished_at = JobState.SUBMITTED, 0, 1.0, 2.0
    record.results = {0: IdResult(IdOutcome.SUBMITTED, 20.0)}
    parts.stats.job_ended(record)
    return sampler


def _gpu_rows(driver: webdriver.Chrome) -> list[str]:
    return text_of(driver, "gpus").splitlines()


def _shows_the_gpus(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    wait_until(driver, lambda d: "RTX 4090" in text_of(d, "gpus"), "the GPU rows")
    big, old = _gpu_rows(driver)
    assert big == "0: NVIDIA GeForce RTX 4090 10.0 GB / 24.0 GB 87 % 66 °C 300 W / 450 W", big
    assert old == "1: NVIDIA GeForce GTX 1070 (not used) 2.0 GB / 8.0 GB 12 % 41 °C not reported", old
    classes = [row.get_attribute("class") for row in driver.find_elements(By.CSS_SELECTOR, "#gpus tr")]
    assert classes == ["", "unused"], classes  # dimmed
    assert text_of(driver, "host") == "CPU 13 % · RAM 6.0 GB / 32.0 GB"
    assert text_of(driver, "energy") == "5.0 Wh of GPU energy so far"
    assert text_of(driver, "kudos-per-kwh").replace(",", "").isdigit()
    identity = text_of(driver, "identity")
    assert identity.startswith(FAKE_BACKEND_LABEL), identity
    for part in ("horde v4.47.1", f"worker id {WORKER_ID}", "reGen 0.1.0", "1 model offered"):
        assert part in identity, identity


async def _in_browser(call: Callable[[], object]) -> object:
    return await asyncio.to_thread(call)


async def test_the_page_shows_each_gpu_its_energy_and_the_identity_and_follows_new_samples(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    nvml = two_gpus()
    sampler = await _fed_by(parts, nvml, session)
    async with TestServer(dashboard_app(parts.sources, token=None)) as server:
        with headless_chromium() as driver:
            await _in_browser(lambda: _shows_the_gpus(driver, str(server.make_url("/"))))
            nvml.gpus[0].temperature_c, nvml.gpus[0].power_w = 83, 410.0
            await sampler.sample()
            await _in_browser(
                lambda: wait_until(driver, lambda d: "83 °C 410 W / 450 W" in _gpu_rows(d)[0], "the next sample")
            )


async def test_without_a_driver_the_page_says_no_gpu_telemetry_and_shows_the_host(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    await _fed_by(parts, FakeNvml([], no_driver=True), session)
    async with TestServer(dashboard_app(parts.sources, token=None)) as server:
        with headless_chromium() as driver:

            def says_why() -> None:
                driver.get(str(server.make_url("/")))
                wait_until(driver, lambda d: "no GPU telemetry" in text_of(d, "gpus"), "the note")
                assert text_of(driver, "gpus") == "no GPU telemetry: Driver Not Loaded"
                assert text_of(driver, "host") == "CPU 13 % · RAM 6.0 GB / 32.0 GB"
                assert text_of(driver, "kudos-per-kwh") == "–"

            await _in_browser(says_why)
