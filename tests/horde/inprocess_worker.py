"""The worker's real popper and pipeline in this process, its children run on threads (`InProcessChildren`).

`build_pipeline` is the one place the tests build a `Pipeline`: the worker's own child specs (one safety
child, `slots` inference children, from the worker's settings) run by the child client given, usually
`InProcessChildren`, whose children are the real cores with the fake backends. `start_worker` adds a
local horde on a real port and a popper popping from it, so everything from the pop answer to the last
submit is the worker's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.jobs.registry import JobRegistry
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.popper import Popper, PopperSettings
from horde_worker_regen.pipeline.settings import PipelineServices, PipelineSettings
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.pipeline.submitter import Submitter
from horde_worker_regen.processes.client import ChildClient
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.worker.children import WorkerChildren
from tests.worker_support import MODEL

WORKER_NAME = "In-process Dreamer"
LIVENESS_S = 30.0


async def no_wait(delay: float) -> None:
    """Retries of uploads and downloads go at once: what is tested is where each id ends, not the pacing."""


def build_pipeline(
    data: BridgeData,
    children: ChildClient,
    client: HordeClient,
    *,
    slots: int = 1,
    stats: WorkerStats | None = None,
    clock: Callable[[], float] = time.monotonic,
    loras: LoraFetcher | None = None,
    retry_sleep: Callable[[float], Awaitable[Any]] = no_wait,
    events: EventLog | None = None,
) -> Pipeline:
    """A pipeline for `data` with the worker's child specs, reporting through `client`; nothing is started."""
    specs = WorkerChildren(data, Path("logs"), 0)
    services = PipelineServices(
        supervisor=children,
        registry=JobRegistry(clock),
        stats=stats if stats is not None else WorkerStats(clock=clock),
        submitter=Submitter(client, sleep=retry_sleep),
        fetcher=InputFetcher(client, sleep=retry_sleep, guard=UrlGuard.for_horde(data.horde_url, True)),
        loras=loras,
        events=events if events is not None else children.events,
        clock=clock,
    )
    worker_children = ChildSpecs(specs.safety_spec(), specs.inference_specs([SlotPlan(None)] * slots))
    return Pipeline(PipelineSettings.from_bridge_data(data), services, worker_children, on_fatal=print)


@dataclass
class InProcessWorker:
    """A local horde, and the worker's popper and pipeline popping from it."""

    horde: RunningLocalHorde
    owner: User
    requester: User
    pipeline: Pipeline
    popper: Popper
    task: asyncio.Task[None]
    children: InProcessChildren


async def start_worker(stack: contextlib.AsyncExitStack, *, slots: int = 1) -> InProcessWorker:
    """Serve a local horde and start popping from it (`stack` owns both, and stops the children)."""
    horde = await stack.enter_async_context(
        serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False))
    )
    owner = horde.add_user("owner", trusted=True)
    requester = horde.add_user("requester", trusted=True, kudos=100_000_000)
    session = await stack.enter_async_context(aiohttp.ClientSession())
    client = HordeClient(session, horde.api_url, owner.api_key)
    data = BridgeData(
        api_key=owner.api_key,
        dreamer_name=WORKER_NAME,
        horde_url=horde.api_url,
        inference_backend="fake",
        safety_backend="fake",
    )
    children = InProcessChildren(liveness_timeout=LIVENESS_S)
    stack.push_async_callback(children.kill_all)
    pipeline = build_pipeline(data, children, client, slots=slots)
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
    return InProcessWorker(horde, owner, requester, pipeline, popper, task, children)


async def _stop(popper: Popper, task: asyncio.Task[None]) -> None:
    popper.stop()
    await asyncio.wait_for(task, 10)
