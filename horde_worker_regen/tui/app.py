"""The terminal UI: a Textual app that polls one `StatusSource` and shows the worker on one screen.

Attached to a running worker (`tui`), `q` only closes the view: the worker goes on. Run with the
worker in this process (`run --tui`), `q` asks once more and then stops the worker as Ctrl+C does
(jobs in flight finish first), and Ctrl+C itself does what it does without the UI; the view closes
when the worker has stopped. A lost connection is said on screen and retried at every poll, and so is an
answer the view cannot show (the worker's answer is untrusted: another version, a proxy, a bug).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import Key
from textual.widgets import Footer, Sparkline, Static

from horde_worker_regen.tui import render
from horde_worker_regen.tui.local_source import WorkerStarting
from horde_worker_regen.tui.source import Snapshot, StatusSource, StatusUnavailable
from horde_worker_regen.tui.trends import IMAGES, KUDOS, Trends

POLL_INTERVAL_S = 2.0
RECENT_SHOWN = 20
MISREAD = "answer not understood"
QUIT_PROMPT = "press q again to stop the worker (jobs in flight finish first); any other key keeps it running"


@dataclass(frozen=True)
class OwnWorker:
    """The worker runs in this process: how the UI stops it, and where its console log went."""

    interrupt: Callable[[], None]  # what Ctrl+C does: stop gracefully, a second time abort
    log_lines: Callable[[int], list[str]] = lambda count: []


class WorkerMonitor(App[None]):
    """One screen: identity, state, trends, slots, queue, telemetry, horde messages, recent jobs."""

    TITLE = "horde-worker-regen"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
Screen {
    layout: vertical;
}
#identity {
    height: 2;
}
#state, #queue {
    height: 1;
}
#connection {
    height: auto;
    max-height: 3;
}
#trends {
    height: 1;
}
.figure {
    width: auto;
    padding: 0 1 0 0;
}
Sparkline {
    width: 1fr;
    height: 1;
    margin: 0 2 0 0;
}
#slots {
    height: auto;
    max-height: 10;
    border: round $primary;
    padding: 0 1;
}
#telemetry, #messages {
    height: auto;
    max-height: 6;
}
#recent {
    height: 1fr;
    min-height: 3;
    border: round $secondary;
    padding: 0 1;
}
#log {
    height: 2;
}
"""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_pause", "pause/resume"),
        Binding("q", "quit_key", "quit"),
        Binding("ctrl+c", "interrupt", "stop", show=False, priority=True),
    ]

    def __init__(
        self,
        source: StatusSource,
        *,
        own: OwnWorker | None = None,
        interval_s: float = POLL_INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._wall_clock = wall_clock
        self._source = source
        self._own = own
        self._interval_s = interval_s
        self._trends = Trends()
        self._history_absent = False
        self._refreshing = asyncio.Lock()
        self.snapshot: Snapshot | None = None  # the last one read
        self.connection_error: str | None = None  # why the last poll failed; None when it succeeded
        self._updated_at: float | None = None
        self._confirming_quit = False

    @property
    def connected(self) -> bool:
        """Whether the last read of the worker succeeded."""
        return self.connection_error is None and self.snapshot is not None

    def compose(self) -> ComposeResult:
        yield Static(id="identity")
        yield Static(id="state")
        with Horizontal(id="trends"):
            yield Static(id="kudos-figure", classes="figure")
            yield Sparkline([], id="kudos-trend")
            yield Static(id="images-figure", classes="figure")
            yield Sparkline([], id="images-trend")
        yield Static(id="slots")
        yield Static(id="queue")
        yield Static(id="telemetry")
        yield Static(id="messages")
        yield Static(id="recent")
        if self._own is not None:
            yield Static(id="log")
        yield Static(id="connection")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#slots").border_title = "slots"
        self.query_one("#recent").border_title = "recent jobs"
        self.query_one("#messages").display = False
        self.set_interval(self._interval_s, self.refresh_now)
        self.call_later(self.refresh_now)

    async def refresh_now(self) -> None:
        """Read the worker once and show what was read (or why nothing could be)."""
        async with self._refreshing:
            try:
                snapshot = await self._source.status()
            except StatusUnavailable as error:
                self.connection_error = str(error) or type(error).__name__
                self._show_connection(starting=isinstance(error, WorkerStarting))
                return
            now = self._wall_clock()
            try:
                self._trends.observe(snapshot, now)
                await self._read_history()
                self._show(snapshot)
            # Whatever an answer of another shape makes the view trip on, the operator keeps the screen and is
            # told, as of a lost connection; the last understood snapshot stays the one acted on.
            except Exception as error:
                self.connection_error = f"{MISREAD} ({type(error).__name__}: {error})"[:200]
            else:
                self.snapshot, self.connection_error, self._updated_at = snapshot, None, now
            self._show_connection(starting=False)

    async def _read_history(self) -> None:
        if self._history_absent:
            return
        try:
            history = await self._source.history(self._trends.newest_time)
        except StatusUnavailable:
            return  # the snapshot was read: the history is asked again at the next poll
        if history is None:
            self._history_absent = True  # an older worker: the polled samples make the trends
        else:
            self._trends.add_history(history)

    def _show(self, snapshot: Snapshot) -> None:
        self.query_one("#identity", Static).update(render.identity_text(snapshot))
        self.query_one("#state", Static).update(render.state_text(snapshot))
        self.query_one("#slots", Static).update(render.slots_text(snapshot))
        self.query_one("#queue", Static).update(render.queue_text(snapshot))
        self.query_one("#telemetry", Static).update(render.telemetry_text(snapshot))
        messages = render.messages_text(snapshot)
        self.query_one("#messages", Static).display = messages is not None
        self.query_one("#messages", Static).update(messages or "")
        self.query_one("#recent", Static).update(render.recent_text(snapshot, RECENT_SHOWN))
        self._show_trends(snapshot)

    def _show_trends(self, snapshot: Snapshot) -> None:
        kudos = render.lookup(snapshot, "totals", "kudos_per_hour")
        self.query_one("#kudos-figure", Static).update(render.rate_text("kudos/hr", kudos, "{:,.0f}"))
        self.query_one("#images-figure", Static).update(render.rate_text("img/min", self._trends.latest(IMAGES)))
        self.query_one("#kudos-trend", Sparkline).data = self._trends.values(KUDOS)
        self.query_one("#images-trend", Sparkline).data = self._trends.values(IMAGES)

    def _show_connection(self, starting: bool) -> None:
        if self._own is not None:
            self.query_one("#log", Static).update(Text("\n".join(self._own.log_lines(2)), "dim"))
        line = self.query_one("#connection", Static)
        if self._confirming_quit:
            line.update(Text(QUIT_PROMPT, "bold yellow"))
        elif starting:
            line.update(Text("the worker is starting (its log is below the slots)", "yellow"))
        elif self.connection_error is not None:
            since = f" · last update {_clock(self._updated_at)}" if self._updated_at else ""
            lost = "" if self.connection_error.startswith(MISREAD) else "connection lost to "
            line.update(Text(f"✗ {lost}{self._source.describe}: {self.connection_error} · "
                             f"retrying every {self._interval_s:g}s{since}", "bold red"))  # fmt: skip
        elif render.lookup(self.snapshot, "worker", "stopping"):
            line.update(Text("stopping: finishing the jobs in flight (Ctrl+C again aborts them)", "bold yellow"))
        else:
            line.update(Text(f"● {self._source.describe} · updated {_clock(self._updated_at)}", "green"))

    # --- keys ---------------------------------------------------------------------------------

    def on_key(self, event: Key) -> None:
        if self._confirming_quit and event.key != "q":
            self._confirming_quit = False
            self._show_connection(starting=False)

    def action_toggle_pause(self) -> None:
        self.run_worker(self._toggle_pause(), group="pause", exclusive=True)

    async def _toggle_pause(self) -> None:
        if self.snapshot is None:
            self.notify("not connected to the worker yet", severity="warning")
            return
        pause = not render.lookup(self.snapshot, "worker", "paused")
        try:
            paused = await self._source.set_paused(pause)
        except StatusUnavailable as error:
            # markup=False: the reason may quote the dashboard's answer, whose brackets are not Textual markup.
            self.notify(f"could not {'pause' if pause else 'resume'}: {error}", severity="error", markup=False)
            return
        self.notify("popping paused: jobs in flight still finish" if paused else "popping resumed")
        await self.refresh_now()

    def action_quit_key(self) -> None:
        if self._own is None:
            self.exit()  # attached: closing the view leaves the worker running
            return
        if render.lookup(self.snapshot, "worker", "stopping"):
            self.notify("already stopping; Ctrl+C aborts the jobs in flight", severity="warning")
            return
        if not self._confirming_quit:
            self._confirming_quit = True
            self._show_connection(starting=False)
            return
        self._confirming_quit = False
        self._show_connection(starting=False)
        self._own.interrupt()

    def action_interrupt(self) -> None:
        if self._own is None:
            self.exit()
        else:
            self._own.interrupt()

    async def on_unmount(self) -> None:
        await self._source.close()


def _clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at is not None else "--:--:--"
