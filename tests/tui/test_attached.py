"""The terminal UI attached to a worker through its dashboard, served over a real port by the dashboard's own
aiohttp app on the worker's live parts: what the screen shows at 80x24, pause and quit keys, a lost connection."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.auth import Handler
from horde_worker_regen.dashboard.history import Sample
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.tui.app import WorkerMonitor
from horde_worker_regen.tui.source import HttpStatusSource
from horde_worker_regen.tui.trends import IMAGES, KUDOS
from tests.dashboard.conftest import MODEL, Parts, build_parts
from tests.dashboard.test_snapshot_and_metrics import jobs_in_flight
from tests.jobs.test_record import make_record
from tests.tui.screen import screen_lines, screen_text, until

DATA = BridgeData(api_key="k" * 22, dreamer_name="Terminal Dreamer", max_threads=2, queue_size=1)
TOKEN = "t" * 32
NEVER_S = 3600.0  # the app's own timer stays out of the way: the tests drive each read


def _busy(parts: Parts) -> None:
    """One job submitted, two running (one at step 4 of 10), one dropped with its reason, one waiting for a slot."""
    parts.clock.now += 30.0
    done = make_record("done-1", images=1)
    done.state, done.slot, done.started_at, done.finished_at = (
        JobState.SUBMITTED,
        0,
        parts.clock.now - 8,
        parts.clock.now,
    )
    done.results = {0: IdResult(IdOutcome.SUBMITTED, 12.5)}
    parts.stats.job_ended(done)
    jobs_in_flight(parts)


@asynccontextmanager
async def _served(parts: Parts, token: str | None = None, port: int | None = None) -> AsyncIterator[TestServer]:
    """The dashboard of `parts` listening on 127.0.0.1 (a free port unless `port` is given)."""
    app = dashboard_app(parts.sources, token)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_screen_shows_identity_state_slots_queue_and_faults_at_80_by_24(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA)
    _busy(parts)
    async with _served(parts) as server:
        app = WorkerMonitor(HttpStatusSource(str(server.make_url("/"))), interval_s=NEVER_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.refresh_now()
            await pilot.pause()
            lines = screen_lines(app)
    text = "\n".join(lines)
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    # Identity from the snapshot's worker and bridge parts (this worker reports no "identity" part yet).
    assert lines[0].startswith("Terminal Dreamer")
    assert "horde stablehorde.net/api" in lines[1] or "horde aihorde.net/api" in lines[1]
    assert "AI Horde Worker reGen:" in lines[1]
    assert "serving" in lines[2] and "faults 1" in lines[2]
    slot_rows = [line for line in lines if "busy" in line]
    assert len(slot_rows) == 2
    assert "run-0" in slot_rows[0] and "4/10" in slot_rows[0] and MODEL in slot_rows[0]
    assert "run-1" in slot_rows[1] and MODEL in slot_rows[1]
    assert f"queue 1: {MODEL} 512×512" in text
    recent = [line for line in lines if "✓" in line or "✗" in line]
    assert "✗ dropped late: its deadline passed" in recent[0]  # newest first, with its reason
    assert "✓ done-1" in recent[1] and "12.5 kudos" in recent[1] and "8.0s" in recent[1]
    assert "no GPU telemetry reported by this worker" in text
    assert "p pause/resume" in text.replace("  ", " ") or "pause/resume" in text


async def test_p_pauses_the_popper_and_p_again_resumes_it(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _served(parts) as server:
        app = WorkerMonitor(HttpStatusSource(str(server.make_url("/"))), interval_s=NEVER_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.snapshot is not None, "the first read")
            await pilot.press("p")
            await until(pilot, lambda: parts.popper.paused, "the popper to pause")
            await until(pilot, lambda: screen_lines(app)[2].startswith("paused"), "the screen to say paused")
            await pilot.press("p")
            await until(pilot, lambda: not parts.popper.paused, "the popper to resume")
            await until(pilot, lambda: screen_lines(app)[2].startswith("serving"), "the screen to say serving")


async def test_q_closes_the_view_and_leaves_the_worker_running(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _served(parts) as server:
        app = WorkerMonitor(HttpStatusSource(str(server.make_url("/"))), interval_s=NEVER_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.snapshot is not None, "the first read")
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running, "the view to close")
        async with session.get(server.make_url("/healthz")) as health:
            assert (health.status, await health.json()) == (200, {"status": "ok"})
    assert not parts.popper.paused and not parts.sources.stopping()
    assert [slot.state.value for slot in parts.pipeline.slots.slots] == ["idle", "idle"]


async def test_a_lost_connection_is_said_and_retried_until_the_worker_answers(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    port = _free_port()
    app = WorkerMonitor(HttpStatusSource(f"http://127.0.0.1:{port}/"), interval_s=NEVER_S)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        assert app.connection_error is not None and "cannot connect" in app.connection_error
        assert "connection lost" in screen_text(app) and "retrying every" in screen_text(app)
        async with _served(parts, port=port):
            await app.refresh_now()
            await pilot.pause()
            assert app.connected
            assert screen_lines(app)[0].startswith("Terminal Dreamer")
        await app.refresh_now()  # the worker went away again: its last figures stay, the loss is said
        await pilot.pause()
        assert "connection lost" in screen_text(app) and "last update" in screen_text(app)
        assert screen_lines(app)[0].startswith("Terminal Dreamer")


async def test_the_dashboard_token_is_sent_and_a_missing_one_is_named(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    async with _served(parts, token=TOKEN) as server:
        url = str(server.make_url("/"))
        without = WorkerMonitor(HttpStatusSource(url), interval_s=NEVER_S)
        async with without.run_test(size=(80, 24)) as pilot:
            await without.refresh_now()
            await pilot.pause()
            assert without.connection_error is not None and "--token" in without.connection_error
            assert TOKEN not in screen_text(without)
        with_token = WorkerMonitor(HttpStatusSource(url, TOKEN), interval_s=NEVER_S)
        async with with_token.run_test(size=(80, 24)) as pilot:
            await with_token.refresh_now()
            await pilot.press("p")
            await until(pilot, lambda: parts.popper.paused, "the popper to pause")
            assert TOKEN not in screen_text(with_token)


async def test_the_sparklines_follow_the_workers_history_when_it_keeps_one(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    asked: list[str | None] = []
    ring = parts.sources.history  # the worker's own history, as /history.json serves it
    for t, kudos, images in ((1000.0, 10.0, 1.0), (1060.0, 30.0, 2.5)):
        ring.add(Sample(t, {KUDOS: kudos, IMAGES: images}))

    @web.middleware
    async def note_since(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/history.json":
            asked.append(request.query.get("since"))
        return await handler(request)

    app_under_test = dashboard_app(parts.sources, None)
    app_under_test.middlewares.append(note_since)
    async with TestServer(app_under_test, host="127.0.0.1") as server:
        app = WorkerMonitor(HttpStatusSource(str(server.make_url("/"))), interval_s=NEVER_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.refresh_now()
            ring.add(Sample(1120.0, {KUDOS: 50.0, IMAGES: 3.0}))
            await app.refresh_now()
            await pilot.pause()
            assert app.query_one("#kudos-trend").data == [10.0, 30.0, 50.0]  # type: ignore[attr-defined]
            assert app.query_one("#images-trend").data == [1.0, 2.5, 3.0]  # type: ignore[attr-defined]
            assert "img/min 3.0" in screen_text(app)
    assert asked[0] is None and "1060.0" in asked  # once the first points are held, only newer ones are asked for


async def test_recent_jobs_in_the_snapshot_cut_urls_to_their_host(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, DATA)
    record = make_record("cut-1", images=1)
    record.state = JobState.FAULTED
    record.fault_reason = "upload failed: https://bucket.example.r2.dev/img.webp?X-Amz-Signature=s3cr3t"
    parts.stats.job_ended(record)
    (job,) = build_snapshot(parts.sources)["recent_jobs"]
    assert (job["job"], job["state"], job["kudos"]) == ("cut-1", "faulted", 0.0)
    assert "bucket.example.r2.dev" in job["reason"] and "s3cr3t" not in job["reason"]
