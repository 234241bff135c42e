"""The running worker: start-up in order, the event loop's life, shutdown in reverse, signals.

Start-up: horde session → custom model list → safety child → inference children → heartbeat → the
capability level to claim (`BridgeClaim`) → popper (offering the models already on disk) → model and
post-processor downloads in the background (the level follows the post-processors) → status line.
SIGINT or SIGTERM: stop popping, finish and submit everything in flight, stop the children, exit 0.
A second signal, or an `.abort` file appearing in the working directory or the logs folder: kill the
children, submit `faulted` once for every id not yet being reported (so the horde re-queues it at
once), give reports in progress a few seconds, exit 128+signal (1 for the file, which is removed).
A third signal: kill every child process at once and exit 128+signal, reporting nothing more.
With `exit_on_unhandled_faults`, a fault the worker would otherwise recover from by itself (see
`Worker._unhandled_fault`) stops it gracefully with status 1, for a supervisor to restart it.
Signal handlers only set events (the third excepted); the main coroutine does the work. A signal while
the child processes start stops their start (a child not ready yet is killed at once, it holds no work)
and the worker exits 0 without serving. Before and after `Worker.run`, `stop_signals` handles them,
so that a signal at start-up or during the exit summary never kills the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from loguru import logger

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.dashboard.server import DashboardServer
from horde_worker_regen.dashboard.snapshot import DashboardSources
from horde_worker_regen.devices.discovery import DeviceInfo
from horde_worker_regen.devices.plan import SlotPlan, planned_gpus, served_by_some_slot
from horde_worker_regen.devices.telemetry import load_nvml
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.credit import BASELINE_TIMEOUT_S, EXIT_READ_TIMEOUT_S, Credited, CreditWatch
from horde_worker_regen.horde.maintenance import remove_maintenance
from horde_worker_regen.jobs.events import EventLog
from horde_worker_regen.models.background import downloader_for
from horde_worker_regen.models.custom import write_custom_models
from horde_worker_regen.models.loras import LoraFetcher
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.pipeline.burst import BurstWatch
from horde_worker_regen.pipeline.pipeline import ChildSpecs, Pipeline
from horde_worker_regen.pipeline.popper import Popper
from horde_worker_regen.pipeline.spool import resume_spooled
from horde_worker_regen.pipeline.spool_lock import SpoolInUse, SpoolLock
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.processes.client import ChildClient, ChildClientFactory
from horde_worker_regen.processes.supervisor import Supervisor
from horde_worker_regen.status.console import alchemy_line, format_status, format_summary, report_status_forever
from horde_worker_regen.worker.abort_file import abort_file_paths, remove_stale_abort_files, watch_abort_files
from horde_worker_regen.worker.alchemy_wiring import AlchemyService
from horde_worker_regen.worker.bridge_claim import BridgeClaim
from horde_worker_regen.worker.children import WorkerChildren
from horde_worker_regen.worker.drain import drain
from horde_worker_regen.worker.event_file import EventFile
from horde_worker_regen.worker.file_fetch import FileFetch
from horde_worker_regen.worker.image_popper import start_image_popper
from horde_worker_regen.worker.metrics import kudos_figures, process_figures
from horde_worker_regen.worker.operator_surfaces import OperatorSurfaces
from horde_worker_regen.worker.operator_view import NvmlSource
from horde_worker_regen.worker.serving_pipeline import ServingPipeline, check_identity_later, lora_fetcher
from horde_worker_regen.worker.startup import ChildStartup
from horde_worker_regen.worker.stop_signals import STOP_SIGNALS, stop_signals

EXIT_OK = 0
EXIT_FAILED = 1
HTTP_CONNECTIONS = 64


@dataclass(frozen=True)
class RunOptions:
    """How `run` was invoked."""

    logs_dir: Path
    verbosity: int = 0
    burst: bool = False
    metrics_file: Path | None = None
    console_log: bool = True  # False while the terminal UI owns the terminal: children log to their files only


class Worker:
    """Owns every part of the running worker."""

    def __init__(
        self,
        data: BridgeData,
        models: list[str],
        options: RunOptions,
        *,
        identity_checked: bool = True,
        devices: list[DeviceInfo] | None = None,
        child_client: ChildClientFactory = Supervisor,
        nvml: NvmlSource = load_nvml,
    ) -> None:
        self._data = data
        self._models = models
        self._options = options
        self._identity_checked = identity_checked  # False: the horde could not be asked at start
        self._devices = devices  # the GPUs the start-up checks already found, if they had to look
        self._child_client = child_client  # child processes; tests run the children in this process
        self._nvml = nvml  # the GPU telemetry's NVML; tests give a fake one
        self._children = WorkerChildren(data, options.logs_dir, options.verbosity, console=options.console_log)
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._exit_code = EXIT_OK
        self._signals_seen = 0
        self._started = time.monotonic()
        self.popper: Popper | None = None  # while serving; `popper.maintenance_message` tells of maintenance
        self.alchemy: AlchemyService | None = None  # while serving, with alchemist: true
        self.surfaces: OperatorSurfaces | None = None  # from serving on: the dashboard, history, telemetry
        self._plans: list[SlotPlan] = []
        self._stats: WorkerStats | None = None
        self._spool_lock: SpoolLock | None = None  # held from before the spool is read until the worker exits
        self.events = EventLog()  # every job and child event of this run (`--metrics-file` writes them)

    @property
    def dashboard(self) -> DashboardServer | None:
        """The dashboard while serving, when enabled and listening."""
        return self.surfaces.dashboard if self.surfaces is not None else None

    @property
    def dashboard_sources(self) -> DashboardSources | None:
        """The worker's live parts as every view reads them (what `run --tui` shows), from serving on."""
        return self.surfaces.sources if self.surfaces is not None else None

    def request_stop(self, reason: str, exit_code: int) -> None:
        """Stop popping and shut down gracefully (called by signals, burst mode and fatal errors)."""
        if self._stop.is_set():
            return
        if exit_code != EXIT_OK:
            logger.error(f"Stopping: {reason}")
        else:
            logger.info(f"Stopping: {reason}")
        self._exit_code = exit_code
        self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._signals_seen += 1
        name = signal.Signals(signum).name
        if self._signals_seen == 1:
            self.request_stop(f"{name} received; finishing the jobs in flight (send it again to abort them)", EXIT_OK)
        elif self._signals_seen == 2:
            self._begin_abort(f"Second {name}", 128 + signum)
        else:
            self._exit_now(name, 128 + signum)

    def _begin_abort(self, why: str, exit_code: int) -> None:
        """Stop at once: fault what is left so the horde re-queues it, then exit with `exit_code`."""
        if self._abort.is_set():
            return
        logger.warning(
            f"{why}: faulting what is left so the horde re-queues it, then exiting "
            "(a further SIGINT or SIGTERM kills everything at once)"
        )
        self._stop.set()
        self._exit_code = exit_code
        self._abort.set()

    @staticmethod
    def _exit_now(name: str, exit_code: int) -> None:
        """Third signal: kill every child process (whatever it is doing) and leave without any clean-up."""
        logger.warning(f"Third {name}: killing every child process and exiting now")
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(children, timeout=5)
        logger.remove()  # flushes the log files before the process ends
        os._exit(exit_code)

    def _unhandled_fault(self, reason: str) -> None:
        """A fault the worker recovers from by itself: a child process lost (crash, hang, silence), an
        inference slot that cannot be restarted, or an unexpected error in the pipeline, the popper or the
        model downloads. With exit_on_unhandled_faults, stop gracefully with status 1 instead."""
        if self._data.exit_on_unhandled_faults:
            self.request_stop(f"exit_on_unhandled_faults is set and {reason}", EXIT_FAILED)

    async def run(self) -> int:
        """Run until stopped; returns the exit status."""
        loop = asyncio.get_running_loop()
        # A signal the start-up checks took but have not handled yet comes here; the loop's own
        # handlers then take over (their wake-up keeps a signal in step with the loop's I/O).
        stop_signals.route_to(loop, self._on_signal)
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        abort_files = abort_file_paths(self._options.logs_dir)
        remove_stale_abort_files(abort_files)
        abort_watch = asyncio.create_task(
            watch_abort_files(abort_files, self._abort, lambda path: self._begin_abort(f"{path} found", EXIT_FAILED)),
            name="abort file",
        )
        identity: asyncio.Task[None] | None = None
        try:
            connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS)
            async with aiohttp.ClientSession(connector=connector) as session:
                client = HordeClient(session, self._data.horde_url, self._data.api_key.get_secret_value())
                fetch = FileFetch.of(
                    self._data,
                    self._models,
                    downloader_for(self._data, session),
                    on_unhandled_fault=self._unhandled_fault,
                    on_no_model=self._no_model_on_disk,
                )
                loras = lora_fetcher(self._data, session)
                if not self._identity_checked:
                    refused = lambda why: self.request_stop(why, EXIT_FAILED)  # noqa: E731
                    identity = asyncio.create_task(check_identity_later(self._data, session, refused), name="identity")
                await self._run_with(client, fetch, loras)
        finally:
            abort_watch.cancel()
            if identity is not None:
                identity.cancel()
            if self._spool_lock is not None:
                self._spool_lock.release()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
            stop_signals.ignore()  # at once: everything is stopped, only the summary is left to print
            if self._stats is not None:
                logger.info(format_summary(self._stats.snapshot(), images=self._data.dreamer))
        return self._exit_code

    async def _run_with(self, client: HordeClient, fetch: FileFetch, loras: LoraFetcher) -> None:
        """Serve, with the event log written to the metrics file (if asked) from the first child's start on."""
        event_file = EventFile(self._options.metrics_file) if self._options.metrics_file is not None else None
        if event_file is not None:
            self.events.add_sink(event_file)
        try:
            await self._serve_with(client, fetch, loras)
        finally:
            if event_file is not None:
                event_file.close()

    async def _serve_with(self, client: HordeClient, fetch: FileFetch, loras: LoraFetcher) -> None:
        write_custom_models(self._data)  # read by the inference children when they start
        self._stats = stats = WorkerStats()
        try:
            self._spool_lock = SpoolLock.take(self._data.spool_folder, self._data.dreamer_name)
        except SpoolInUse as error:
            logger.error(f"Cannot start: {error}")
            self._exit_code = EXIT_FAILED
            return
        supervisor = self._child_client(liveness_timeout=float(self._data.process_timeout), events=self.events)
        children = ChildSpecs(self._children.safety_spec(), [])  # the inference slots once the GPUs are known
        serving = ServingPipeline.build(
            self._data, client, supervisor, stats, fetch=fetch, loras=loras, safety=children, events=self.events,
            on_fatal=lambda why: self.request_stop(why, EXIT_FAILED),
        )  # fmt: skip
        pipeline, claim, spool = serving.pipeline, serving.claim, serving.spool
        pipeline.on_unhandled_fault = self._unhandled_fault
        resume_spooled(spool, pipeline)  # what a crashed run left goes out while the children start
        startup = ChildStartup(self._data, self._models, self._devices, self._children, self._stop)
        started = await startup.start(pipeline)
        self._plans = startup.plans
        if not started:
            if startup.failed:
                self._exit_code = EXIT_FAILED
            return
        supervisor.start_heartbeat()
        self.events.emit("worker_started", slots=len(self._plans), process=process_figures())
        try:
            if not self._stop.is_set():  # a signal while the last child came up: nothing to serve
                await self._serve(client, pipeline, stats, fetch, claim)
        finally:
            await self._stop_children(supervisor, pipeline)
        alchemy_stats = self.alchemy.alchemist.stats if self.alchemy is not None else None
        self.events.emit("worker_stopped", process=process_figures(), kudos=kudos_figures(stats, alchemy_stats))

    async def _serve(
        self,
        client: HordeClient,
        pipeline: Pipeline,
        stats: WorkerStats,
        fetch: FileFetch,
        claim: BridgeClaim,
    ) -> None:
        downloads = fetch.models
        for note in optional_kinds(self._data).notes:
            logger.warning(note)
        claim.announce()  # the children are up: their post-processor loaders have answered
        if self._data.remove_maintenance_on_init:
            await remove_maintenance(client, self._data.dreamer_name)
        credit = await self._credit_watch(client)
        parts = (client, pipeline, stats, claim)
        popper, popper_task, alchemy = await self._start_poppers(parts, fetch)
        tasks = [
            popper_task,
            *fetch.start(lambda ready: popper.set_models(served_by_some_slot(ready, self._plans)), claim),
            asyncio.create_task(credit.run(), name="kudos credited"),
            asyncio.create_task(report_status_forever(
                self._data.stats_output_frequency, lambda: self._status_line(stats, pipeline, popper.paused)
            ), name="status"),
        ]  # fmt: skip
        surfaces = None
        try:
            sources_for = lambda view: DashboardSources(  # noqa: E731 (read once, by the surfaces)
                self._data, stats, pipeline, popper, downloads, stopping=self._stop.is_set,
                alchemist=alchemy.alchemist if alchemy is not None else None,
                telemetry=view.telemetry, horde_identity=view.horde_identity,
            )  # fmt: skip
            self.surfaces = surfaces = await OperatorSurfaces.start(
                self._data, client=client, nvml=self._nvml, sources_for=sources_for, events=self.events,
                logs_dir=self._options.logs_dir, used_gpus=planned_gpus(self._plans),
            )  # fmt: skip
            await self._stop.wait()
            await drain(popper, popper_task, pipeline, alchemy, self._abort)
        finally:
            try:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if alchemy is not None:
                    await alchemy.close()
                if not self._abort.is_set():
                    await credit.bounded_read(EXIT_READ_TIMEOUT_S)  # the exit summary shows what was paid
            finally:  # whatever failed above, the views stop and the last status is written
                if surfaces is not None:
                    await surfaces.stop()
        logger.info(self._status_line(stats, pipeline, paused=False))

    async def _start_poppers(
        self, parts: tuple[HordeClient, Pipeline, WorkerStats, BridgeClaim], fetch: FileFetch
    ) -> tuple[Popper, asyncio.Task[None], AlchemyService | None]:
        """The image popper and, with alchemist: true, the alchemist beside it (it yields to image jobs)."""
        # Burst mode ends the run once the image popper and the alchemist (those this worker runs) ran dry.
        burst = BurstWatch(self.request_stop) if self._options.burst else None
        images, forms = (
            (burst.join("job") if burst and self._data.dreamer else None),
            (burst.join("form") if burst and self._data.alchemist else None),
        )
        popper, popper_task = start_image_popper(
            self._data, self._plans, parts, fetch, burst=images, on_stop=self.request_stop
        )
        popper_task.add_done_callback(self._popper_ended)
        self.popper = popper
        self.alchemy = alchemy = await AlchemyService.start_for(
            self._data,
            parts,
            fetch.post_processors,
            self.request_stop,
            paused=lambda: popper.paused,
            burst=forms,
            images_coming=(lambda: popper.jobs_coming) if self._data.dreamer else (lambda: False),
        )
        return popper, popper_task, alchemy

    async def _credit_watch(self, client: HordeClient) -> CreditWatch:
        """The kudos reader, with its baseline (what the horde had credited before this run) taken."""
        # An alchemist-only worker is paid on its alchemist's record; beside images, the alchemy line has its kudos.
        credited_name = self._data.dreamer_name if self._data.dreamer else self._data.alchemist_name
        credit = CreditWatch(client, credited_name, self._credited)
        await credit.bounded_read(BASELINE_TIMEOUT_S)
        return credit

    def _status_line(self, stats: WorkerStats, pipeline: Pipeline, paused: bool) -> str:
        """The periodic status line: the image side's figures (with dreamer on), the alchemist's (when it runs)."""
        alchemy = alchemy_line(self.alchemy.alchemist) if self.alchemy is not None else None
        return format_status(stats.snapshot(), pipeline.slots.busy_count(), len(self._plans),
                             pipeline.registry.waiting, paused=paused, stopped=pipeline.guard.popping_stopped,
                             alchemy=alchemy, images=self._data.dreamer)  # fmt: skip

    def _credited(self, credited: Credited) -> None:
        if self._stats is not None:
            self._stats.credited = credited

    def _popper_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("The popper failed unexpectedly")
            self.request_stop("the popper failed", EXIT_FAILED)

    def _no_model_on_disk(self) -> None:
        if not self._data.dreamer:
            return  # an alchemist-only worker serves no image model
        self.request_stop("no configured model could be put on disk and verified", EXIT_FAILED)

    async def _stop_children(self, supervisor: ChildClient, pipeline: Pipeline) -> None:
        pipeline.stop_restarting()
        if self._abort.is_set():
            await supervisor.kill_all()
        else:
            await supervisor.stop_all()
        logger.info("All child processes stopped")
