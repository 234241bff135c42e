"""`run --tui`: the view on the worker in this process; q asks before it stops the worker as Ctrl+C does,
Ctrl+C stops it at once; the console log is held while the view is up and its last lines printed after."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from multiprocessing import resource_tracker
from types import SimpleNamespace

import aiohttp
import pytest
from textual.pilot import Pilot

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.tui import in_process
from horde_worker_regen.tui.app import QUIT_PROMPT, OwnWorker, WorkerMonitor
from horde_worker_regen.tui.console_tail import ConsoleTail
from horde_worker_regen.tui.in_process import ServingWorker, run_with_tui
from horde_worker_regen.tui.local_source import LocalStatusSource
from tests.dashboard.conftest import build_parts
from tests.tui.screen import screen_text, until

DATA = BridgeData(api_key="k" * 22, dreamer_name="Own Dreamer", max_threads=1, queue_size=1)
NEVER_S = 3600.0


class Interrupts:
    """Counts what the view sends where the terminal would send SIGINT."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _view(sources: DashboardSources | None, interrupts: Interrupts) -> WorkerMonitor:
    return WorkerMonitor(LocalStatusSource(lambda: sources), own=OwnWorker(interrupts), interval_s=NEVER_S)


async def test_q_asks_first_and_the_second_q_stops_the_worker_like_ctrl_c(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA, slots=1)
    interrupts = Interrupts()
    app = _view(parts.sources, interrupts)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, "the first read")
        assert "Own Dreamer" in screen_text(app)
        await pilot.press("q")
        assert interrupts.count == 0 and QUIT_PROMPT[:60] in screen_text(app).replace("\n", "")
        await pilot.press("x")  # any other key: the worker keeps running
        assert QUIT_PROMPT[:60] not in screen_text(app).replace("\n", "")
        await pilot.press("q", "q")
        assert interrupts.count == 1
        assert app.is_running  # the view stays up while the worker finishes what it holds


async def test_ctrl_c_reaches_the_worker_at_once_each_time(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA, slots=1)
    interrupts = Interrupts()
    app = _view(parts.sources, interrupts)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+c")
        await pilot.press("ctrl+c")  # the second one aborts the jobs in flight, as it does without the view
        assert interrupts.count == 2


async def test_p_pauses_the_popper_of_the_worker_in_this_process(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA, slots=1)
    app = _view(parts.sources, Interrupts())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, "the first read")
        await pilot.press("p")
        await until(pilot, lambda: parts.popper.paused, "the popper to pause")


async def test_while_the_worker_starts_the_view_says_so() -> None:
    app = _view(None, Interrupts())
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        assert "the worker is starting" in screen_text(app)
        assert "connection lost" not in screen_text(app)


async def test_run_with_tui_holds_the_console_and_closes_when_the_worker_stops(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA, slots=1)
    terminal = io.StringIO()
    tail = ConsoleTail(terminal)
    stopped = asyncio.Event()

    class Served:
        dashboard_sources: DashboardSources | None = parts.sources

    async def worker(on_worker: Callable[[ServingWorker], None]) -> int:
        # Stands in for start_and_run: reports the worker, logs, and runs until the view interrupts it.
        on_worker(Served())
        tail.write("12:00:00 | INFO    | \x1b[1mServing 1 model(s)\x1b[0m\n")
        await stopped.wait()
        tail.write("12:00:09 | INFO    | Stopped: 3 images\n")
        return 0

    async def keys(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, WorkerMonitor)
        await until(pilot, lambda: app.snapshot is not None, "the first read")
        await until(pilot, lambda: "Serving 1 model(s)" in screen_text(app), "the held log line on screen")
        assert terminal.getvalue() == ""  # nothing written over the screen
        await pilot.press("q", "q")

    status = await run_with_tui(worker, tail, interrupt=stopped.set, interval_s=NEVER_S, headless=True, auto_pilot=keys)
    assert status == 0
    assert terminal.getvalue().splitlines() == [
        "12:00:00 | INFO    | Serving 1 model(s)",
        "12:00:09 | INFO    | Stopped: 3 images",
    ]


async def test_run_with_tui_starts_no_resource_tracker_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_posixsubprocess() -> None:
        raise ModuleNotFoundError("No module named '_posixsubprocess'")  # what Windows' multiprocessing does

    monkeypatch.setattr(in_process, "os", SimpleNamespace(name="nt"), raising=False)
    monkeypatch.setattr(resource_tracker, "ensure_running", without_posixsubprocess)
    view_up = asyncio.Event()

    async def worker(on_worker: Callable[[ServingWorker], None]) -> int:
        await view_up.wait()  # stops once the view is up: the view closes with it
        return 0

    async def up(pilot: Pilot[object]) -> None:
        view_up.set()

    status = await run_with_tui(
        worker, ConsoleTail(io.StringIO()), interrupt=view_up.set, interval_s=NEVER_S, headless=True, auto_pilot=up
    )
    assert status == 0
