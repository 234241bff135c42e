"""The worker's real popper and pipeline in this process, its children replaced by their cores.

`CoreSupervisor` stands in for the process supervisor with the same contract: `start` hands back a
ready child, `send` delivers a message to the child and its answer comes back through the bound
callback on a later turn of the event loop. Behind it run the real `InferenceCore` (fake backend)
and `SafetyCore` (fake safety backend) that the child processes run, so everything from the pop
answer to the last submit is the worker's own code, against a local horde on a real port.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import FakeBackendSettings, FakeSafetySettings
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.inference.fake import FakeInferenceBackend
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.pipeline.submitter import Submitter
from horde_worker_regen.processes.inference_child import InferenceChild
from horde_worker_regen.processes.messages import ChildReady
from horde_worker_regen.processes.safety_child import SafetyChild
from horde_worker_regen.processes.supervisor import ChildHandle, ChildSpec
from horde_worker_regen.safety.core import SafetyCore
from horde_worker_regen.safety.fake import FakeSafetyBackend
from tests.worker_support import MODEL

WORKER_NAME = "In-process Dreamer"


@dataclass(frozen=True)
class NoProcess:
    """What a core-backed child has in place of a process."""

    pid: int | None = None


class CoreSupervisor:
    """The supervisor's contract, with each child's core run in this process."""

    def __init__(self) -> None:
        self._incarnations = itertools.count(1)
        self._cores: dict[int, InferenceChild | SafetyChild] = {}

    def bind(self, on_message: Any, on_lost: Any) -> None:
        self._on_message = on_message

    async def start(self, spec: ChildSpec) -> ChildHandle:
        incarnation = next(self._incarnations)
        ready: asyncio.Future[ChildReady] = asyncio.get_running_loop().create_future()
        ready.set_result(ChildReady(incarnation, 0, "fake"))
        if spec.name == "safety":
            self._cores[incarnation] = SafetyChild(SafetyCore(FakeSafetyBackend(FakeSafetySettings())), incarnation)
        else:
            self._cores[incarnation] = InferenceChild(
                InferenceCore(FakeInferenceBackend(FakeBackendSettings())), incarnation
            )
        return ChildHandle(spec, incarnation, NoProcess(), None, ready, 0.0)  # type: ignore[arg-type]

    def send(self, handle: ChildHandle, message: Any) -> bool:
        answer = self._cores[handle.incarnation].handle(message)
        asyncio.get_running_loop().call_soon(self._on_message, handle, answer)
        return True

    def kill(self, handle: ChildHandle) -> None:
        self._cores.pop(handle.incarnation, None)

    async def stop(self, handle: ChildHandle) -> None:
        self.kill(handle)

    async def kill_all(self) -> None:
        self._cores.clear()


async def no_wait(delay: float) -> None:
    """Retries of uploads and downloads go at once: what is tested is where each id ends, not the pacing."""


@dataclass
class InProcessWorker:
    """A local horde, and the worker's popper and pipeline popping from it."""

    horde: RunningLocalHorde
    owner: User
    requester: User
    pipeline: Pipeline
    popper: Popper
    task: asyncio.Task[None]


async def start_worker(stack: Any, *, slots: int = 1) -> InProcessWorker:
    """Serve a local horde and start popping from it (`stack`: an AsyncExitStack that owns both)."""
    horde = await stack.enter_async_context(
        serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False))
    )
    owner = horde.add_user("owner", trusted=True)
    requester = horde.add_user("requester", trusted=True, kudos=100_000_000)
    session = await stack.enter_async_context(aiohttp.ClientSession())
    client = HordeClient(session, horde.api_url, owner.api_key)
    data = BridgeData(api_key=owner.api_key, dreamer_name=WORKER_NAME, horde_url=horde.api_url)
    spec = ChildSpec("inference", print, None)
    services = PipelineServices(
        supervisor=CoreSupervisor(),  # type: ignore[arg-type]
        registry=JobRegistry(),
        stats=WorkerStats(),
        submitter=Submitter(client, sleep=no_wait),
        fetcher=InputFetcher(client, sleep=no_wait, guard=UrlGuard.for_horde(horde.api_url, True)),
    )
    children = ChildSpecs(ChildSpec("safety", print, None), [spec] * slots)
    pipeline = Pipeline(PipelineSettings.from_bridge_data(data), services, children, on_fatal=print)
    await pipeline.start_children()
    popper = Popper(
        client,
        build_pop_request(data, [MODEL], bridge_agent(1)),
        pipeline,
        WorkerStats(),
        PopperSettings(slots, 0, idle_interval=0.02, backoff_cap=0.1),
        on_stop=print,
    )
    task = asyncio.get_running_loop().create_task(popper.run())
    stack.push_async_callback(_stop, popper, task)
    return InProcessWorker(horde, owner, requester, pipeline, popper, task)


async def _stop(popper: Popper, task: asyncio.Task[None]) -> None:
    popper.stop()
    await asyncio.wait_for(task, 10)
