"""`run --tui`: the worker and the terminal UI on one event loop, in one process.

The UI reads the worker's live parts directly (`LocalStatusSource`). While it owns the terminal the
console log is held in memory (`ConsoleTail`) and the children log to their files only; the terminal
is in raw mode, so Ctrl+C arrives as a key, and the UI sends SIGINT itself: the worker's own handler
then stops it exactly as Ctrl+C does without the UI. The UI closes when the worker has stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from multiprocessing import resource_tracker
from typing import Any, Protocol

from loguru import logger
from textual.app import AutopilotCallbackType

from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.tui.app import POLL_INTERVAL_S, OwnWorker, WorkerMonitor
from horde_worker_regen.tui.console_tail import ConsoleTail
from horde_worker_regen.tui.local_source import LocalStatusSource


class ServingWorker(Protocol):
    """The worker as the UI sees it: its live parts once it serves."""

    @property
    def dashboard_sources(self) -> DashboardSources | None:
        """None until the worker serves."""
        ...


StartWorker = Callable[[Callable[[ServingWorker], None]], Coroutine[Any, Any, int]]


def interrupt_like_ctrl_c() -> None:
    """What Ctrl+C does in a terminal not in raw mode: SIGINT to this process (its handler decides)."""
    signal.raise_signal(signal.SIGINT)


async def run_with_tui(
    start: StartWorker,
    tail: ConsoleTail,
    *,
    interrupt: Callable[[], None] = interrupt_like_ctrl_c,
    interval_s: float = POLL_INTERVAL_S,
    headless: bool = False,
    auto_pilot: AutopilotCallbackType | None = None,
) -> int:
    """Run the worker (`start`, told where to report the worker it made) under the UI; its exit status."""
    # multiprocessing's resource tracker starts (with the first child) on sys.stderr's descriptor, which
    # the screen replaces with an object that has none while it is up: start it now, on the real one.
    # Only on POSIX: Windows has no resource tracker process (ensure_running imports _posixsubprocess,
    # which Windows lacks).
    if os.name == "posix":
        resource_tracker.ensure_running()
    workers: list[ServingWorker] = []
    worker_task = asyncio.create_task(start(workers.append), name="worker")
    source = LocalStatusSource(lambda: workers[0].dashboard_sources if workers else None)
    app = WorkerMonitor(source, own=OwnWorker(interrupt, tail.last), interval_s=interval_s)
    worker_task.add_done_callback(lambda _: app.exit())
    tail.hold()
    try:
        await app.run_async(headless=headless, auto_pilot=auto_pilot)
    finally:
        tail.release()
    if not worker_task.done():
        logger.warning("The terminal UI closed while the worker runs: the console shows its log again")
    return await worker_task
