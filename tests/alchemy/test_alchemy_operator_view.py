"""What the operator sees of a running alchemist, end to end against the local horde (the whole worker in this
process, fake backends): the dashboard's /status.json and /metrics, the status line, the `worker_stopped`
record, and check-config's forms offered at start, each against what the horde itself recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from loguru import logger

from horde_worker_regen.commands.alchemy_explained import explain_alchemy, post_processors_on_disk
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.worker.alchemy_wiring import AlchemyService
from horde_worker_regen.worker.status_file import LAST_STATUS_FILE
from tests.alchemy.support import ALCHEMIST, WAIT_S, alchemist_folder, form_named, png
from tests.dashboard.test_snapshot_and_metrics import _metrics
from tests.worker_support import WorkerInProcess, generations_of, horde_with_users, queue, until_true

SERVED = ["nsfw", "interrogation", "caption", "RealESRGAN_x2plus"]
FAILING = "RealESRGAN_x4plus"


async def _read_dashboard(worker: WorkerInProcess) -> tuple[str, str]:
    """The text of /status.json and of /metrics, from the worker's own dashboard."""
    dashboard = worker.worker.dashboard
    assert dashboard is not None and dashboard.url is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{dashboard.url}status.json") as response:
            status = await response.text()
        async with session.get(f"{dashboard.url}metrics") as response:
            return status, await response.text()


def _done_kudos(horde: RunningLocalHorde, request_id: str) -> dict[str, float]:
    return {form.name: form.kudos for form in horde.forms_of(request_id) if form.state is FormState.DONE}


async def _wait_until_served(horde: RunningLocalHorde, worker: WorkerInProcess, request_id: str) -> None:
    """Every served form done, and the failing one faulted twice (then withdrawn by the fault breaker)."""
    await horde.wait_for_state(lambda: set(_done_kudos(horde, request_id)) == set(SERVED), WAIT_S)
    await worker.wait_for(
        lambda event: (
            event.kind == "form_ended"
            and sum(1 for e in worker.of_kind("form_ended") if e.fields["state"] == "faulted") == 2
        )
    )


async def test_the_dashboard_metrics_and_exit_record_show_the_forms_the_horde_recorded(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, requester):
        request = horde.queue_interrogation(requester, [*SERVED, FAILING], png(600, 64))  # two 512² tiles
        image_job = queue(horde, requester, "a lighthouse at dusk")
        fake = {"seconds_per_job": 0.0, "failing_post_processors": [FAILING]}
        folder = alchemist_folder(tmp_path, horde, owner, fake_backend=fake)
        data = load_config(folder / "bridgeData.yaml").data
        worker = WorkerInProcess(folder, burst=False)
        async with worker.running() as run:
            await _wait_until_served(horde, worker, request.id)
            await horde.wait_for_state(lambda: all(pg.is_completed for pg in generations_of(horde, image_job)), WAIT_S)
            alchemy = worker.worker.alchemy
            assert alchemy is not None
            # check-config's forms offered at start are the running alchemist's (the breaker aside).
            explained = explain_alchemy(data, await post_processors_on_disk(data))
            assert explained.offered == alchemy.alchemist.served()
            status_text, metrics_text = await _read_dashboard(worker)
            worker.worker.request_stop("test done", 0)
            assert await run == 0
        kudos = _done_kudos(horde, request.id)
        failing = form_named(horde, request.id, FAILING)
    assert kudos == {"nsfw": 1.0, "interrogation": 3.0, "caption": 1.0, "RealESRGAN_x2plus": 6.0}

    status = json.loads(status_text)
    section = status["alchemy"]
    assert status["worker"]["roles"] == ["dreamer", "alchemist"]
    rows = {row["form"]: row for row in section["forms"]}
    assert {form: rows[form]["kudos"] for form in SERVED} == kudos
    assert {form: rows[form]["done"] for form in SERVED} == dict.fromkeys(SERVED, 1)
    assert (rows[FAILING]["faulted"], rows[FAILING]["offered"]) == (2, False)
    assert rows[FAILING]["reason"].startswith("withdrawn: 2 of its forms faulted in a row")
    assert section["last_problem"]["form"] == FAILING and section["last_problem"]["form_id"] == failing.id
    assert (section["totals"]["done"], section["totals"]["faulted"], section["totals"]["kudos"]) == (4, 2, 11.0)
    samples = _metrics(metrics_text)
    assert samples[("horde_worker_alchemy_kudos_total", (("form", "interrogation"),))] == 3.0
    assert samples[("horde_worker_alchemy_forms_total", (("form", FAILING), ("outcome", "faulted")))] == 2
    assert samples[("horde_worker_alchemy_form_offered", (("form", FAILING),))] == 0
    # No presigned URL, the source's or an upload's, ever reaches the page data or the metrics.
    for text in (status_text, metrics_text):
        assert "X-Amz-Signature" not in text and "/generations/" not in text

    [stopped] = worker.of_kind("worker_stopped")
    figures = stopped.fields["kudos"]["alchemy"]
    assert (figures["done"], figures["faulted"], figures["dropped"]) == (4, 2, 0)
    assert figures["kudos_by_form"] == kudos
    assert figures["by_form"][FAILING] == {"done": 0, "faulted": 2, "dropped": 0}
    assert len(worker.errors) == 1 and f"Alchemy form '{FAILING}' withdrawn" in worker.errors[0]  # its one line


async def test_an_alchemist_only_worker_reads_its_alchemist_s_credit_and_shows_no_image_figures(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        async with horde_with_users() as (horde, owner, requester):
            request = horde.queue_interrogation(requester, ["interrogation", "RealESRGAN_x2plus"], png(64, 64))
            worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner, dreamer=False), burst=False)
            async with worker.running() as run:
                await horde.wait_for_interrogation(request.id, "done", WAIT_S)
                await worker.wait_for(
                    lambda event: event.kind == "form_ended" and len(worker.of_kind("form_ended")) == 2
                )
                status = json.loads((await _read_dashboard(worker))[0])
                worker.worker.request_stop("test done", 0)
                assert await run == 0
            credited_by_horde = horde.state.workers[owner_alchemist(horde)].kudos_generated
    finally:
        logger.remove(sink)
    assert (status["worker"]["name"], status["worker"]["roles"]) == (ALCHEMIST, ["alchemist"])
    assert status["alchemy"]["totals"]["kudos"] == credited_by_horde
    [stopped] = worker.of_kind("worker_stopped")
    kudos = stopped.fields["kudos"]
    assert kudos["alchemy"]["kudos"] == 3.0 + 3.0 == credited_by_horde
    assert kudos["credited"]["jobs"] == credited_by_horde  # the alchemist's record, not the idle dreamer's
    status_lines = [line for line in lines if line.startswith("Status: ")]
    assert status_lines and all(line.startswith("Status: alchemy ") and " jobs" not in line for line in status_lines)
    assert status_lines[-1].startswith("Status: alchemy 2 forms, 0 in flight, 6.0 kudos")
    [summary] = [line for line in lines if line.startswith("Summary: ")]
    assert summary.startswith(
        f"Summary: alchemy only, {credited_by_horde:,.1f} kudos credited by the horde (forms {credited_by_horde:,.1f}, "
    )


def owner_alchemist(horde: RunningLocalHorde) -> str:
    """The id of the one alchemist the horde knows."""
    [worker_id] = [wid for wid, worker in horde.state.workers.items() if worker.kind == "interrogation"]
    return worker_id


async def test_an_alchemy_that_fails_to_close_still_stops_the_dashboard_and_leaves_the_last_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def close_fails(self: AlchemyService) -> None:
        raise RuntimeError("the caption weights would not let go")

    monkeypatch.setattr(AlchemyService, "close", close_fails)
    async with horde_with_users() as (horde, owner, _):
        worker = WorkerInProcess(alchemist_folder(tmp_path, horde, owner), burst=False)
        async with worker.running() as run:
            await until_true(lambda: worker.worker.dashboard is not None, "the dashboard to listen")
            dashboard = worker.worker.dashboard
            assert dashboard is not None and dashboard.url is not None
            url = dashboard.url
            worker.worker.request_stop("test done", 0)
            [outcome] = await asyncio.gather(run, return_exceptions=True)
    assert isinstance(outcome, RuntimeError)  # the failure is not hidden...
    last = json.loads((tmp_path / "logs" / LAST_STATUS_FILE).read_text())
    assert last["worker"]["stopping"] is True  # ... and the views were stopped all the same
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}healthz")
