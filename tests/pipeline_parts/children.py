"""The children of the pipeline's parts under test: the worker's own child specs, run by `InProcessChildren`.

Each child is the real core with the fake backend, on a thread of this process. The tests play the
children (`played_children`): each is held from its start (it takes work and starts none of it), and the
test says its answers (`InProcessChildren.say`). What the parts sent each child is in
`InProcessChildren.sent`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.devices.plan import SlotPlan
from horde_worker_regen.processes.handle import ChildSpec
from horde_worker_regen.processes.in_process import InProcessChildren, InProcessHandle
from horde_worker_regen.worker.children import WorkerChildren

WAIT_S = 5.0
LIVENESS_S = 30.0  # no child here goes silent: the liveness watch is not what these tests are about
FAKE_BACKEND = {"seconds_per_job": 0.0, "seconds_per_load": 0.0}


def fake_data(**settings: Any) -> BridgeData:
    """A worker's configuration with the fake backends; `settings` are the worker's own."""
    return BridgeData(
        **{"api_key": "k" * 22, "inference_backend": "fake", "safety_backend": "fake", "fake_backend": FAKE_BACKEND}
        | settings
    )


def inference_specs(count: int, data: BridgeData | None = None) -> list[ChildSpec]:
    """The worker's specs of `count` inference children (inference-1, inference-2, ...) on the CPU."""
    return WorkerChildren(data or fake_data(), Path("logs"), 0).inference_specs([SlotPlan(None)] * count)


def safety_spec(data: BridgeData | None = None) -> ChildSpec:
    """The worker's spec of its safety child."""
    return WorkerChildren(data or fake_data(), Path("logs"), 0).safety_spec()


def played_children() -> InProcessChildren:
    """A child client whose children the test plays: each is held from its start."""
    children = InProcessChildren(liveness_timeout=LIVENESS_S)
    children.hold_new_children()
    return children


def child_named(children: InProcessChildren, name: str) -> InProcessHandle:
    """The running child called `name` (e.g. `inference-1#2`)."""
    [handle] = [handle for handle in children.children if handle.name == name]
    return handle


async def started(children: InProcessChildren, name: str) -> InProcessHandle:
    """The child `name`, once it has started and whoever started it has taken it into service.

    `child_started` is recorded as `start` returns, and the starter takes the child on in that same turn
    of the loop, before the waiting test goes on."""
    await children.events.wait_for(
        lambda event: event.kind == "child_started" and event.fields["child"] == name, WAIT_S
    )
    return child_named(children, name)


def sent_to(children: InProcessChildren, kind: type[Any]) -> list[tuple[str, Any]]:
    """(child name, message) of each message of one kind sent so far, oldest first."""
    return [(name, message) for name, message in children.sent if isinstance(message, kind)]
