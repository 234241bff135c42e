"""GPU telemetry (a fake NVML) and the identity in /status.json and /metrics; sampling never blocks the loop."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from horde_worker_regen import __version__
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.identity import FAKE_BACKEND_LABEL
from horde_worker_regen.devices.energy import JOULES_PER_KWH
from horde_worker_regen.devices.telemetry import HostReading
from horde_worker_regen.devices.telemetry_state import Telemetry
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.worker_identity import HordeIdentityWatch
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.worker.telemetry_sampler import SHUTDOWN_WAIT_S, TelemetrySampler
from tests.dashboard.conftest import MODEL, Parts, build_parts
from tests.dashboard.test_snapshot_and_metrics import _client, _metrics
from tests.devices.fake_nvml import FakeNvml, two_gpus
from tests.jobs.test_record import make_record

API_KEY = "telemetry-test-api-key"  # 22 characters
DATA = BridgeData(api_key=API_KEY, dreamer_name="Telemetry Dreamer", inference_backend="fake", safety_backend="fake")
HOST = HostReading(cpu_pct=12.5, ram_used_mb=6_000.0, ram_total_mb=32_000.0)
MB = 1024 * 1024
Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


async def _telemetry_on(parts: Parts, nvml: FakeNvml) -> TelemetrySampler:
    """A sampler on the fake NVML, on the parts' clock, feeding their dashboard; opened. The worker's slots run
    on GPU 0 only."""
    telemetry = Telemetry(used_gpus=frozenset({0}))  # the worker runs on the 4090; the 1070 is another's
    sampler = TelemetrySampler(telemetry, 5.0, nvml=lambda: nvml, host=lambda: HOST, clock=parts.clock)
    parts.sources.telemetry = telemetry
    await sampler.open()
    return sampler


def _identity_on(parts: Parts, session: aiohttp.ClientSession) -> HordeIdentityWatch:
    """The horde's word on this worker, as if read (the horde client itself is tested against the local horde)."""
    watch = HordeIdentityWatch(HordeClient(session, DATA.horde_url, API_KEY), DATA.dreamer_name)
    watch.horde_version, watch.worker_id = "4.47.1", "a3c6e0d6-6b46-4e2e-9a57-0e1f7f3c5b11"
    parts.sources.horde_identity = watch
    return watch


def _earned(parts: Parts, reward: float) -> None:
    record = make_record("paid", images=1)
    record.state, record.slot = JobState.SUBMITTED, 0
    record.started_at, record.finished_at = parts.clock.now - 5.0, parts.clock.now
    record.results = {0: IdResult(IdOutcome.SUBMITTED, reward)}
    parts.stats.job_ended(record)


async def test_two_gpus_their_energy_and_kudos_per_kwh_reach_status_json(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    sampler = await _telemetry_on(parts, two_gpus())
    await sampler.sample()
    parts.clock.now += 20.0
    await sampler.sample()  # 20 s at 300 W: 6000 J
    _earned(parts, 10.0)
    async with _client(parts) as client:
        telemetry = (await (await client.get("/status.json")).json())["telemetry"]
    assert telemetry["available"] is True and telemetry["source"] == "nvml" and telemetry["note"] is None
    big, old = telemetry["gpus"]
    assert big == {
        "index": 0, "name": "NVIDIA GeForce RTX 4090", "vram_used_mb": 10_240.0, "vram_total_mb": 24_564.0,
        "utilisation_pct": 87.0, "temperature_c": 66.0, "power_w": 300.0, "power_limit_w": 450.0, "used": True,
    }  # fmt: skip
    assert old["power_w"] is None and old["power_limit_w"] is None and old["vram_used_mb"] == 2_048.0
    assert old["used"] is False  # shown, but not this worker's: its energy is not counted
    assert telemetry["host"] == {"cpu_pct": 12.5, "ram_used_mb": 6_000.0, "ram_total_mb": 32_000.0}
    energy = 6000.0 / JOULES_PER_KWH
    assert telemetry["energy_kwh"] == pytest.approx(energy)
    kudos = parts.stats.snapshot().kudos_session
    assert kudos > 0 and telemetry["kudos_per_kwh"] == pytest.approx(kudos / energy)


async def test_metrics_carry_each_gpu_the_energy_and_the_identity_without_the_key(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    sampler = await _telemetry_on(parts, two_gpus())
    _identity_on(parts, session)
    await sampler.sample()
    parts.clock.now += 20.0
    await sampler.sample()
    async with _client(parts) as client:
        text = await (await client.get("/metrics")).text()
    assert API_KEY not in text
    metrics = _metrics(text)
    big = (("gpu", "0"), ("name", "NVIDIA GeForce RTX 4090"))
    old = (("gpu", "1"), ("name", "NVIDIA GeForce GTX 1070"))
    assert metrics["horde_worker_gpu_vram_used_bytes", big] == 10_240 * MB
    assert metrics["horde_worker_gpu_vram_total_bytes", old] == 8_192 * MB
    assert metrics["horde_worker_gpu_utilisation_percent", big] == 87
    assert metrics["horde_worker_gpu_temperature_celsius", old] == 41
    assert metrics["horde_worker_gpu_power_watts", big] == 300
    assert metrics["horde_worker_gpu_power_limit_watts", big] == 450
    assert ("horde_worker_gpu_power_watts", old) not in metrics  # no sensor: a gap, not a false 0
    assert metrics["horde_worker_energy_kwh_total", ()] == pytest.approx(6000.0 / JOULES_PER_KWH)
    assert metrics["horde_worker_gpu_telemetry_available", ()] == 1.0
    assert metrics["horde_worker_host_memory_total_bytes", ()] == 32_000 * MB
    assert metrics["horde_worker_models_offered", ()] == 1.0
    (labels,) = [dict(key[1]) for key in metrics if key[0] == "horde_worker_identity_info"]
    assert labels == {
        "horde_url": DATA.horde_url, "horde_version": "4.47.1", "worker_name": "Telemetry Dreamer",
        "worker_id": "a3c6e0d6-6b46-4e2e-9a57-0e1f7f3c5b11", "bridge_agent": parts.popper.bridge_agent,
        "backend": "fake", "backend_label": FAKE_BACKEND_LABEL, "worker_version": __version__,
    }  # fmt: skip


async def test_without_a_driver_the_page_data_says_why_and_shows_the_host(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    sampler = await _telemetry_on(parts, FakeNvml([], no_driver=True))
    await sampler.sample()
    async with _client(parts) as client:
        telemetry = (await (await client.get("/status.json")).json())["telemetry"]
        metrics = _metrics(await (await client.get("/metrics")).text())
    assert telemetry["available"] is False and telemetry["source"] == "none"
    assert telemetry["note"] == "no GPU telemetry: Driver Not Loaded"
    assert telemetry["gpus"] == [] and telemetry["host"]["ram_total_mb"] == 32_000.0
    assert telemetry["energy_kwh"] == 0.0 and telemetry["kudos_per_kwh"] is None
    assert metrics["horde_worker_gpu_telemetry_available", ()] == 0.0
    assert not [key for key in metrics if key[0] == "horde_worker_gpu_power_watts"]


async def test_the_identity_names_the_horde_the_worker_and_the_fake_backend(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _client(parts) as client:
        before = (await (await client.get("/status.json")).json())["identity"]
        _identity_on(parts, session)
        response = await client.get("/status.json")
        identity = (await response.json())["identity"]
        assert API_KEY not in await response.text()
    assert before["horde_version"] is None and before["worker_id"] is None  # not read yet: unknown, not an error
    assert identity == {
        "horde_url": DATA.horde_url, "horde_version": "4.47.1", "worker_name": "Telemetry Dreamer",
        "worker_id": "a3c6e0d6-6b46-4e2e-9a57-0e1f7f3c5b11", "bridge_agent": parts.popper.bridge_agent,
        "backend": {"kind": "fake", "label": FAKE_BACKEND_LABEL}, "worker_version": __version__,
        "models_offered": [MODEL],
    }  # fmt: skip


async def test_a_driver_slow_to_answer_never_holds_up_the_dashboard(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    nvml = two_gpus()
    sampler = await _telemetry_on(parts, nvml)
    await sampler.sample()
    nvml.block_power = release = threading.Event()
    nvml.gpus[0].temperature_c = 90
    sampling = asyncio.create_task(sampler.sample())
    try:
        assert await asyncio.to_thread(nvml.power_entered.wait, 30.0), "the sampler never reached the power call"
        async with _client(parts) as client:  # the loop answers while the sampler's thread waits on NVML
            assert (await client.get("/healthz")).status == 200
            shown = (await (await client.get("/status.json")).json())["telemetry"]
        assert shown["gpus"][0]["temperature_c"] == 66.0  # the previous sample, whole
        assert not sampling.done()
    finally:
        release.set()
    await sampling
    assert parts.sources.telemetry is not None and parts.sources.telemetry.gpus[0].temperature_c == 90.0


async def test_a_driver_that_never_answers_does_not_hold_up_stopping_the_sampler(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    nvml = two_gpus()
    sampler = await _telemetry_on(parts, nvml)
    nvml.block_power = release = threading.Event()
    sampling = asyncio.create_task(sampler.sample())
    try:
        assert await asyncio.to_thread(nvml.power_entered.wait, 30.0), "the sampler never reached the power call"
        async with _client(parts) as client:
            sampling.cancel()  # what stopping the worker does to the sampler's task, then its close
            closing = asyncio.create_task(sampler.close())
            assert (await client.get("/healthz")).status == 200  # the loop answers while the close waits
            assert not closing.done()  # a bounded while, for the shutdown queued behind the blocked call
            await asyncio.wait_for(closing, SHUTDOWN_WAIT_S + 30.0)  # ... and then it returns without it
        assert nvml.shut_down == 0 and sampling.cancelled()
        # Not the default executor's thread, which `asyncio.run` would wait for at exit: a daemon nobody joins.
        assert nvml.power_thread is not None and nvml.power_thread.daemon
    finally:
        release.set()
    # Once the driver answers again, the thread runs the shutdown it was handed.
    assert await asyncio.to_thread(nvml.shutdown_entered.wait, 30.0), "NVML was never shut down"
