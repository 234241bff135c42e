"""The local horde: an embedded, faithful AI Horde server for tests, demos and benchmarks.

It speaks the worker-facing contract of `horde-api.md` (pop, submit, the R2 upload sink, worker
and user endpoints) and of alchemy (`/v2/interrogate/*`), plus a requester side to feed it work,
keeps its state in memory, and can inject faults per endpoint at run time. See `create_app`,
`LocalHorde` and `testing.serve_local_horde`.
"""

from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock, SystemClock
from horde_worker_regen.localhorde.config import LocalHordeConfig, load_config
from horde_worker_regen.localhorde.context import HORDE_KEY, LocalHorde

__all__ = ["HORDE_KEY", "FakeClock", "LocalHorde", "LocalHordeConfig", "SystemClock", "create_app", "load_config"]
