"""The worker's answer is untrusted (another version, a proxy, a bug): odd data in the snapshot or the history
shows as "?" or is left out, an answer the view cannot show is said on screen, and an error text is never read
as markup."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from horde_worker_regen.tui import render
from horde_worker_regen.tui.app import WorkerMonitor
from horde_worker_regen.tui.source import History, Snapshot, StatusUnavailable
from horde_worker_regen.tui.trends import IMAGES, KUDOS, Trends
from tests.tui.fake_source import FakeStatusSource
from tests.tui.screen import screen_lines, screen_text, until

NEVER_S = 3600.0
# Every key the view reads, at any level: drawn as keys of the arbitrary mappings below, so that odd values land
# where the render functions look for numbers, lists and mappings.
KEYS = [
    "worker", "name", "horde_url", "state", "stopping", "maintenance_message", "uptime_s", "horde_messages",
    "message", "paused", "totals", "jobs", "images", "faulted", "dropped", "kudos_session", "kudos_per_hour",
    "slots", "index", "device", "kind", "label", "job", "step", "total_steps", "model", "queue", "width",
    "height", "finishing", "telemetry", "available", "gpus", "vram_used_mb", "vram_total_mb", "utilisation_pct",
    "temperature_c", "power_w", "power_limit_w", "note", "host", "cpu_pct", "ram_used_mb", "ram_total_mb",
    "kudos_per_kwh", "energy_kwh", "identity", "worker_name", "worker_id", "backend", "models_offered",
    "horde_version", "bridge_agent", "bridge", "agent", "recent_jobs", "at", "kudos", "seconds", "reason",
    "faults", "outcome", "series", KUDOS, IMAGES,
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()  # nan and ±inf included: Python's json reads NaN, Infinity and 1e999
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=6)
    ),
    max_leaves=30,
)
SNAPSHOTS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)


def _drawn(text: Text | None) -> str:
    """The text as a terminal draws it (what Textual does with it, short of the screen)."""
    terminal = io.StringIO()
    Console(file=terminal, width=80, color_system=None).print(text or "")
    return terminal.getvalue()


@settings(max_examples=400, deadline=None)
@given(snapshot=SNAPSHOTS, lines=st.integers(min_value=0, max_value=30))
def test_no_snapshot_raises_from_the_render_functions(snapshot: Snapshot, lines: int) -> None:
    _drawn(render.identity_text(snapshot))
    _drawn(render.state_text(snapshot))
    _drawn(render.slots_text(snapshot))
    _drawn(render.queue_text(snapshot))
    _drawn(render.telemetry_text(snapshot))
    _drawn(render.messages_text(snapshot))
    _drawn(render.recent_text(snapshot, lines))
    _drawn(render.rate_text("kudos/hr", render.lookup(snapshot, "totals", "kudos_per_hour"), "{:,.0f}"))


@settings(max_examples=300, deadline=None)
@given(histories=st.lists(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=3), max_size=3),
       snapshots=st.lists(SNAPSHOTS, max_size=3))  # fmt: skip
def test_no_history_or_snapshot_gives_the_trends_a_point_that_is_not_a_finite_number(
    histories: list[History], snapshots: list[Snapshot]
) -> None:
    trends = Trends()
    for now, snapshot in enumerate(snapshots):
        trends.observe(snapshot, float(now))
    for history in histories:
        trends.add_history(history)
    for name in (KUDOS, IMAGES):
        values = trends.values(name)
        assert all(abs(value) < float("inf") for value in values)
        assert not values or max(values) - min(values) < float("inf")  # the sparkline scales by the span
    assert trends.newest_time is None or abs(trends.newest_time) < float("inf")


def _odd() -> Snapshot:
    """A snapshot of this worker's shape with values of another kind where numbers belong."""
    return {
        "worker": {"name": "Odd Dreamer", "state": "serving", "uptime_s": "12s", "paused": False},
        "totals": {"jobs": 3, "images": "three", "faulted": 1e999, "dropped": 10**400, "kudos_session": [1],
                   "kudos_per_hour": "lots"},
        "slots": [{"index": 0, "state": "busy", "job": {"job": "odd-1"}, "step": "4", "total_steps": 1e400,
                   "model": "Deliberate"}, "not a slot"],
        "telemetry": {"available": True, "gpus": [{"index": 0, "vram_used_mb": "1G", "vram_total_mb": None,
                      "utilisation_pct": float("nan"), "temperature_c": {}, "power_w": "hot"}],
                      "kudos_per_kwh": "x", "energy_kwh": -1e999},
        "recent_jobs": [{"at": 1e20, "state": "submitted", "job": "far-1", "kudos": "12", "seconds": 10**400},
                        {"at": -1e20, "state": "faulted", "job": "past-1", "reason": "odd"}],
    }  # fmt: skip


class OddHistory(FakeStatusSource):
    """Answers a history with points that are not finite numbers, and notes each `since` asked for."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self.asked: list[float | None] = []

    async def history(self, since: float | None) -> History | None:
        self.asked.append(since)
        newest = 100.0 + len(self.asked)
        return {"series": {KUDOS: [[10**400, 1], [1e999, 2.0], [newest, 5.0], [newest - 0.5, float("nan")]],
                           IMAGES: [[newest, -1e999], "bad", [newest, 10**400]]}}  # fmt: skip


async def test_odd_numbers_show_as_question_marks_and_the_sparklines_keep_moving() -> None:
    source = OddHistory(_odd())
    app = WorkerMonitor(source, interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await app.refresh_now()
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert app.connected
        assert "serving  up ?  jobs 3  images ?  faults ?  kudos ?" in lines[2]
        assert "kudos/hr ?" in text
        assert "odd-1" in text and "?/?" in text and "not a slot" not in text
        assert "VRAM ?/0.0 GB  util ?%  ?°C  ? W" in text and "kudos/kWh ?" in text
        assert "--:--:-- ✓ far-1" in text and "? kudos ?s" in text and "--:--:-- ✗ faulted past-1: odd" in text
        kudos = app.query_one("#kudos-trend").data  # type: ignore[attr-defined]
    # Each read asked for the points after the newest finite one held, and got the newer point.
    assert len(source.asked) >= 2 and source.asked[0] is None
    assert source.asked[1:] == [101.0 + n for n in range(len(source.asked) - 1)]
    assert kudos == [5.0] * len(source.asked)


class NotASnapshot(FakeStatusSource):
    """Answers something other than a mapping (another StatusSource's bug) while `garbled`."""

    garbled = True

    async def status(self) -> Snapshot:
        if self.garbled:
            return ["not", "a", "snapshot"]  # type: ignore[return-value]
        return await super().status()


async def test_an_answer_the_view_cannot_show_is_said_on_screen_and_read_again() -> None:
    source = NotASnapshot(_odd())
    app = WorkerMonitor(source, interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        assert app.connection_error is not None and app.connection_error.startswith("answer not understood")
        assert app.snapshot is None and "answer not understood" in screen_text(app)  # nothing taken from it
        assert "retrying every" in screen_text(app)
        source.garbled = False
        await app.refresh_now()
        await pilot.pause()
        assert app.connected and "answer not understood" not in screen_text(app)


class RefusesPause(FakeStatusSource):
    async def set_paused(self, paused: bool) -> bool:
        raise StatusUnavailable("the dashboard refused the request (HTTP 403): <b>[/]no[bold] entry</b>")


async def test_an_error_text_with_brackets_is_shown_as_it_is() -> None:
    app = WorkerMonitor(RefusesPause(_odd()), interval_s=NEVER_S)
    async with app.run_test(size=(100, 24), notifications=True) as pilot:  # the toast drawn, as on a terminal
        await until(pilot, lambda: app.snapshot is not None, "the first read")
        await pilot.press("p")
        await until(pilot, lambda: "[/]no[bold] entry" in screen_text(app), "the refusal on screen")
        assert app.is_running
