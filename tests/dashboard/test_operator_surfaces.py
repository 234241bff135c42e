"""The operator's surfaces start and stop together: a part that fails to start stops those before it, and the
last-status file never fails the worker's shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.server import DashboardServer
from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.worker import operator_surfaces
from horde_worker_regen.worker.operator_surfaces import OperatorSurfaces
from horde_worker_regen.worker.operator_view import OperatorView
from horde_worker_regen.worker.status_file import LAST_STATUS_FILE, LastStatusFile
from tests.dashboard.conftest import build_parts
from tests.devices.fake_nvml import two_gpus

DATA = BridgeData(api_key="surfaces-test-api-key1", dreamer_name="Surfaces Dreamer", inference_backend="fake")
SURFACE_TASKS = {"telemetry", "horde identity", "history", "last status file"}


def _running_surface_tasks() -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks() if task.get_name() in SURFACE_TASKS and not task.done()]


@contextmanager
def _warnings_of(module: str) -> Iterator[list[str]]:
    records: list[str] = []
    sink = logger.add(lambda message: records.append(message.record["message"]), level="WARNING", filter=module)
    try:
        yield records
    finally:
        logger.remove(sink)


async def test_a_dashboard_that_fails_to_start_stops_what_started_before_it(
    session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = await build_parts(session, DATA)
    nvml = two_gpus()

    def sources_for(view: OperatorView) -> DashboardSources:
        parts.sources.telemetry, parts.sources.horde_identity = view.telemetry, view.horde_identity
        return parts.sources

    async def port_taken(data: BridgeData, sources: DashboardSources) -> DashboardServer | None:
        raise OSError("address already in use")

    monkeypatch.setattr(operator_surfaces, "start_dashboard", port_taken)
    client = HordeClient(session, "http://127.0.0.1:9/api/", "surfaces-test-api-key1")  # nobody listens there
    with pytest.raises(OSError, match="address already in use"):
        await OperatorSurfaces.start(
            DATA, client=client, nvml=lambda: nvml, sources_for=sources_for, events=EventLog(), logs_dir=tmp_path
        )
    assert _running_surface_tasks() == []
    assert nvml.shut_down == 1  # the telemetry let NVML go
    last = json.loads((tmp_path / LAST_STATUS_FILE).read_text())  # the status as it stopped
    assert last["worker"]["name"] == "Surfaces Dreamer"


async def test_a_last_status_that_cannot_be_built_is_said_once_and_never_raises(tmp_path: Path) -> None:
    def broken() -> dict[str, object]:
        raise ValueError("a snapshot part that would not build")

    with _warnings_of("horde_worker_regen.worker.status_file") as said:
        status = LastStatusFile(tmp_path / LAST_STATUS_FILE, broken)
        await status.write()
        await status.write()
        await status.stop()  # as the worker stops: no exception out of it
    assert len(said) == 1 and "a snapshot part that would not build" in said[0]
    assert not (tmp_path / LAST_STATUS_FILE).exists()
