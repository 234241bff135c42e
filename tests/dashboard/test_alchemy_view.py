"""The alchemist in /status.json, /metrics and the status line: forms offered or why not, held, ended, kudos.

A real alchemist on the dashboard's real pipeline (children in this process): forms are put in its
book and ended through its statistics and its fault breaker as the runner and the reporter do, then
everything the operator reads is checked, and that no form's source or upload URL ever shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.metrics import metrics_registry, render
from horde_worker_regen.dashboard.snapshot import build_snapshot
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.form_record import FormRecord, FormState
from horde_worker_regen.pipeline.alchemy.alchemist import Alchemist
from horde_worker_regen.pipeline.inputs import InputFetcher
from horde_worker_regen.scheduling.alchemy import BACKGROUND_REMOVAL_NOT_READY, CAPTION_OFF, FormSupply
from horde_worker_regen.status.console import alchemy_line, format_status
from horde_worker_regen.worker.alchemy_wiring import alchemy_settings
from tests.dashboard.conftest import Parts, build_parts
from tests.dashboard.test_snapshot_and_metrics import _metrics

FORMS = ["caption", "nsfw", "interrogation", "RealESRGAN_x2plus", "strip_background"]
DATA = BridgeData(
    api_key="k" * 22, dreamer_name="Dashboard Dreamer", alchemist=True, alchemist_name="Dashboard Alchemist",
    forms=FORMS, max_threads=1,
)  # fmt: skip
SIGNATURE = "X-Amz-Signature=0123456789abcdef"
SOURCE = f"https://r2.example.com/source/f.webp?X-Amz-Expires=3600&{SIGNATURE}"
UPLOAD = f"https://r2.example.com/generations/f.webp?X-Amz-Expires=1800&{SIGNATURE}"
SUPPLY = FormSupply(frozenset({"caption", "nsfw", "interrogation"}), False, True, frozenset({"strip_background"}))


async def _alchemist(
    session: aiohttp.ClientSession, parts: Parts, supply: Callable[[], FormSupply] = lambda: SUPPLY
) -> Alchemist:
    client = HordeClient(session, DATA.horde_url, DATA.api_key.get_secret_value())
    alchemist = Alchemist(
        client, parts.pipeline, InputFetcher(client), alchemy_settings(DATA, lambda: "agent"), supply,
        on_fatal=lambda why: None, clock=parts.clock,
    )  # fmt: skip
    parts.sources.alchemist = alchemist
    return alchemist


def _form(form_id: str, form: str, popped_at: float) -> FormRecord:
    return FormRecord(form_id, form, {}, SOURCE, UPLOAD, popped_at)


def _serve_some_forms(parts: Parts, alchemist: Alchemist) -> None:
    """Two forms held (one running), three ended (one faulted), one form withdrawn after two failures."""
    book, stats = alchemist.book, alchemist.stats
    held = [_form("held-nsfw", "nsfw", parts.clock.now), _form("held-up", "RealESRGAN_x2plus", parts.clock.now)]
    for record in held:
        book.add(record)
    book.move(held[0], FormState.QUEUED)
    book.move(held[0], FormState.RUNNING)
    parts.clock.now += 600.0
    stats.count(_form("a", "interrogation", 0.0), FormState.SUBMITTED, 3.0)
    stats.count(_form("b", "RealESRGAN_x2plus", 0.0), FormState.SUBMITTED, 6.0)
    why = f"its image could not be uploaded (HTTP 403 refused: {UPLOAD})"
    stats.count(_form("c", "strip_background", 0.0), FormState.FAULTED, 0.0, why)
    for _ in range(2):
        alchemist.guard.count("strip_background", "failing_feature", why)


async def test_the_alchemist_s_forms_and_kudos_show_in_status_json_metrics_and_the_status_line(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA, slots=1)
    alchemist = await _alchemist(session, parts)
    _serve_some_forms(parts, alchemist)
    async with TestClient(TestServer(dashboard_app(parts.sources, token=None))) as client:
        status_text = await (await client.get("/status.json")).text()
        status = await (await client.get("/status.json")).json()
        metrics_text = await (await client.get("/metrics")).text()
    assert status == build_snapshot(parts.sources)
    assert status["worker"]["roles"] == ["dreamer", "alchemist"]
    alchemy = status["alchemy"]
    assert (alchemy["name"], alchemy["state"], alchemy["configured"]) == ("Dashboard Alchemist", "serving", FORMS)
    assert alchemy["offered"] == ["nsfw", "interrogation", "RealESRGAN_x2plus"]
    rows = {row["form"]: row for row in alchemy["forms"]}
    assert list(rows) == FORMS
    assert rows["caption"]["reason"] == CAPTION_OFF
    assert rows["strip_background"]["reason"] == (
        "withdrawn: 2 of its forms faulted in a row (last: its image could not be uploaded "
        "(HTTP 403 refused: https://r2.example.com/...))"
    )
    assert (rows["RealESRGAN_x2plus"]["done"], rows["RealESRGAN_x2plus"]["in_flight"]) == (1, 1)
    assert (rows["strip_background"]["faulted"], rows["interrogation"]["kudos"]) == (1, 3.0)
    assert alchemy["totals"] == {
        "done": 2, "faulted": 1, "dropped": 0, "in_flight": 2, "kudos": 9.0, "kudos_per_hour": pytest.approx(54.0)
    }  # fmt: skip
    assert alchemy["in_flight_by_lane"] == {"analysis": 1, "post_processing": 1}
    assert [(form["form_id"], form["state"], form["age_s"]) for form in alchemy["in_flight"]] == [
        ("held-nsfw", "running", 600.0),
        ("held-up", "popped", 600.0),
    ]
    assert alchemy["last_problem"]["form"] == "strip_background"
    assert alchemy["last_problem"]["reason"].endswith("(HTTP 403 refused: https://r2.example.com/...)")
    for text in (status_text, metrics_text):
        assert SIGNATURE not in text and "/source/" not in text and "/generations/" not in text

    samples = _metrics(metrics_text)
    assert samples[("horde_worker_alchemy_forms_total", (("form", "RealESRGAN_x2plus"), ("outcome", "done")))] == 1
    assert samples[("horde_worker_alchemy_forms_total", (("form", "strip_background"), ("outcome", "faulted")))] == 1
    assert samples[("horde_worker_alchemy_forms_total", (("form", "caption"), ("outcome", "dropped")))] == 0
    assert samples[("horde_worker_alchemy_kudos_total", (("form", "RealESRGAN_x2plus"),))] == 6.0
    assert samples[("horde_worker_alchemy_form_offered", (("form", "caption"),))] == 0
    assert samples[("horde_worker_alchemy_form_offered", (("form", "nsfw"),))] == 1
    assert samples[("horde_worker_alchemy_forms_in_flight", (("lane", "analysis"),))] == 1
    assert samples[("horde_worker_alchemy_forms_offered", ())] == 3
    assert samples[("horde_worker_alchemy_kudos_per_hour", ())] == pytest.approx(54.0)
    assert samples[("horde_worker_alchemy_maintenance", ())] == 0

    line = format_status(parts.stats.snapshot(), 0, 1, 0, alchemy=alchemy_line(alchemist))
    assert "| alchemy 2 forms (1 faulted), 2 in flight, 9.0 kudos, 54/hr, 3/5 forms offered |" in line


async def test_an_alchemist_in_maintenance_or_paused_says_so_and_alchemy_off_shows_nothing(
    session: aiohttp.ClientSession,
) -> None:
    parts = await build_parts(session, DATA, slots=1)
    assert build_snapshot(parts.sources)["alchemy"] is None
    assert not any(name.startswith("horde_worker_alchemy") for name, _ in _metrics_of(parts))
    alchemist = await _alchemist(session, parts)
    parts.popper.pause()
    alchemist.paused = lambda: parts.popper.paused
    assert build_snapshot(parts.sources)["alchemy"]["state"] == "paused"
    alchemist.popper.maintenance_message = "put into maintenance by a moderator"
    alchemy = build_snapshot(parts.sources)["alchemy"]
    assert (alchemy["state"], alchemy["maintenance_message"]) == ("maintenance", "put into maintenance by a moderator")
    assert ("horde_worker_alchemy_maintenance", ()) in _metrics_of(parts)
    assert format_status(parts.stats.snapshot(), 0, 1, 0, alchemy=alchemy_line(alchemist)).endswith(
        "| ALCHEMIST IN MAINTENANCE"
    )


async def test_strip_background_waits_for_its_model_and_the_dashboard_says_why(
    session: aiohttp.ClientSession,
) -> None:
    supply = replace(SUPPLY, managed=frozenset())  # u2net.onnx not on disk and verified yet
    parts = await build_parts(session, DATA, slots=1)
    await _alchemist(session, parts, lambda: supply)
    alchemy = build_snapshot(parts.sources)["alchemy"]
    assert "strip_background" not in alchemy["offered"]
    assert {row["form"]: row["reason"] for row in alchemy["forms"]}["strip_background"] == BACKGROUND_REMOVAL_NOT_READY
    supply = SUPPLY  # the worker's download landed and was verified
    assert build_snapshot(parts.sources)["alchemy"]["offered"] == ["nsfw", "interrogation", "RealESRGAN_x2plus",
                                                                   "strip_background"]  # fmt: skip


def _metrics_of(parts: Parts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return _metrics(render(metrics_registry(lambda: build_snapshot(parts.sources))).decode())
