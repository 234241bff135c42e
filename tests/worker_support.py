"""Running the worker against a local horde, for pipeline tests: the real CLI in a subprocess, or the
whole `Worker` in this process with its children on threads.

`WorkerProcess` runs the CLI, collects its console output line by line and lets a test wait for a line
instead of sleeping; with `--metrics-file` the worker writes its event log (`events_of`). `WorkerInProcess`
runs `Worker` on `InProcessChildren`: a test waits for and asserts on `worker.events`, and does to the
children what happens to processes (`children.crash`, `children.freeze`, ...).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from loguru import logger
from PIL import Image

from horde_worker_regen.config.loader import load_config
from horde_worker_regen.devices.telemetry import load_nvml
from horde_worker_regen.jobs.events import Event, EventKind, EventLog
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.processes.handle import ChildHandle
from horde_worker_regen.processes.in_process import InProcessChildren
from horde_worker_regen.worker.event_file import read_event_file
from horde_worker_regen.worker.operator_view import NvmlSource
from horde_worker_regen.worker.orchestrator import RunOptions, Worker
from horde_worker_regen.worker.stop_signals import STOP_SIGNALS
from tests.support import FIXTURES, REPO_ROOT, TEMPLATE

MODEL = "Deliberate"
PROCESS_TIMEOUT_S = 120.0
# No background sweeps or suspicion checks: a test's horde changes only through what the test does.
QUIET_HORDE = LocalHordeConfig(sweep_interval=0, detect_suspicion=False)


@asynccontextmanager
async def horde_with_users(
    config: LocalHordeConfig = QUIET_HORDE,
) -> AsyncIterator[tuple[RunningLocalHorde, User, User]]:
    """A local horde with its two trusted users: the worker's owner and a requester with kudos to spare."""
    async with serve_local_horde(config) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)
        yield horde, owner, requester


async def until_true(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds (an explicit wait on the worker's state, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited for {what}"
        await asyncio.sleep(0.05)


def worker_folder(tmp_path: Path, horde: RunningLocalHorde, owner: User, **settings: Any) -> Path:
    """A folder with bridgeData.yaml (fake backends) and a cached model reference."""
    paths = ReferencePaths(tmp_path / "models")
    paths.reference.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "stable_diffusion.json", paths.reference)
    shutil.copy(FIXTURES / "image_model_usage.json", paths.usage)
    data = yaml.safe_load(TEMPLATE.read_text())
    data.update({
        "api_key": owner.api_key, "dreamer_name": "Pipeline Test Dreamer", "horde_url": horde.api_url,
        "cache_home": str(paths.cache_home), "models_to_load": [MODEL], "inference_backend": "fake",
        "safety_backend": "fake", "fake_backend": {"seconds_per_job": 0.0}, "stats_output_frequency": 1,
        "dashboard_port": 0,  # tests run side by side: never compete for the default port
    })  # fmt: skip
    data.update(settings)
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def queue(horde: RunningLocalHorde, requester: User, prompt: str, **params: Any) -> WaitingPrompt:
    """Queue a request for MODEL; keyword arguments go to `params` unless they are top-level fields."""
    top_level = {
        "nsfw",
        "censor_nsfw",
        "source_image",
        "source_processing",
        "source_mask",
        "r2",
        "disable_batching",
        "extra_source_images",
    }
    body: dict[str, Any] = {"prompt": prompt, "models": [MODEL], "params": {}}
    for key, value in params.items():
        (body if key in top_level else body["params"])[key] = value
    return queue_request(horde.horde, requester, body)


def generations_of(horde: RunningLocalHorde, wp: WaitingPrompt) -> list[ProcessingGeneration]:
    """Every job the horde handed out for a request."""
    return list(horde.state.generations_of(wp))


def assert_all_submitted_once(
    horde: RunningLocalHorde, requests: Iterable[WaitingPrompt], submit_counter: Counter[str]
) -> None:
    """Every job of every request completed, not faulted, and submitted exactly once."""
    for wp in requests:
        assert all(
            pg.is_completed and not pg.faulted and submit_counter[pg.id] == 1 for pg in generations_of(horde, wp)
        ), wp.id


def stored_image(horde: RunningLocalHorde, pg: ProcessingGeneration) -> Image.Image:
    """The image the worker delivered for a job (uploaded, or inline and stored by the horde)."""
    stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{pg.id}.webp")
    assert stored is not None, f"no image stored for {pg.id}"
    image = Image.open(io.BytesIO(stored.data))
    image.load()
    return image


class WorkerProcess:
    """The worker CLI in a subprocess, its output gathered as it comes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    async def start(self, *args: str) -> WorkerProcess:
        """Start `run` with `--logs-dir <folder>/logs` and the given extra arguments."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
        environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "horde_worker_regen",
            "run",
            "--logs-dir",
            str(self.folder / "logs"),
            *args,
            cwd=self.folder,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new_line.set()
        self._new_line.set()

    @property
    def pid(self) -> int:
        """The worker's main process id."""
        assert self._process is not None
        return self._process.pid

    def still_running(self) -> bool:
        """Whether the worker's main process has not exited yet."""
        return self._process is not None and self._process.returncode is None

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = PROCESS_TIMEOUT_S, after: int = 0) -> str:
        """The first output line containing `text` after the first `after` lines (waiting for it to be printed)."""

        async def scan() -> str:
            seen = after
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                assert self._reader is not None
                if self._reader.done():
                    raise AssertionError(f"the worker exited without printing {text!r}:\n{self.output}")
                self._new_line.clear()
                await self._new_line.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_for_count(self, text: str, count: int, timeout: float = PROCESS_TIMEOUT_S) -> None:
        """Wait until `count` output lines contain `text`."""

        async def scan() -> None:
            while sum(text in line for line in self.lines) < count:
                assert self._reader is not None
                if self._reader.done():
                    raise AssertionError(f"the worker exited with fewer than {count} lines {text!r}:\n{self.output}")
                self._new_line.clear()
                await self._new_line.wait()

        await asyncio.wait_for(scan(), timeout)

    def send_signal(self, signum: signal.Signals) -> None:
        """Send a signal to the worker's main process."""
        assert self._process is not None
        self._process.send_signal(signum)

    async def wait(self, timeout: float = PROCESS_TIMEOUT_S) -> int:
        """The exit status, once the worker has exited and its output is read."""
        assert self._process is not None and self._reader is not None
        status = await asyncio.wait_for(self._process.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return status

    async def kill(self) -> None:
        """Clean-up for a failed test: kill the worker if it still runs."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


async def run_command(folder: Path, command: str, timeout: float = PROCESS_TIMEOUT_S) -> tuple[int, str]:
    """Run one CLI subcommand (e.g. `download-models`) in `folder` to its end: its exit status and output."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "horde_worker_regen", command, "--logs-dir", str(folder / "logs"),
        cwd=folder, env=environ, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, output.decode(errors="replace")


async def run_burst(
    folder: Path, *args: str, expected_status: int = 0, timeout: float = PROCESS_TIMEOUT_S
) -> WorkerProcess:
    """Run the worker in burst mode to its end, assert its exit status, and never leave it running."""
    worker = await WorkerProcess(folder).start("--burst", *args)
    try:
        assert await worker.wait(timeout) == expected_status, worker.output
    finally:
        await worker.kill()
    return worker


def error_lines(logs_dir: Path) -> list[str]:
    """ERROR (or worse) lines from every trace log of the run (main process and children)."""
    found = []
    for path in sorted(logs_dir.glob("trace*.log")):
        found += [
            f"{path.name}: {line}"
            for line in path.read_text().splitlines()
            if "| ERROR" in line or "| CRITICAL" in line
        ]
    return found


def events_of(path: Path, *kinds: str) -> list[dict[str, Any]]:
    """The records of an event file (`run --metrics-file`), of these kinds (all when none is given)."""
    return [record for record in read_event_file(path) if not kinds or record["kind"] in kinds]


class WorkerInProcess:
    """The whole worker (`Worker`, as `run` starts it after its checks) in this process, its children run
    on threads by `InProcessChildren`, with the folder's bridgeData.yaml and its logs folder.

    Loguru lines of ERROR or worse logged while it runs are kept in `errors`."""

    def __init__(self, folder: Path, *, burst: bool = True, nvml: NvmlSource = load_nvml) -> None:
        data = load_config(folder / "bridgeData.yaml").data
        options = RunOptions(logs_dir=folder / "logs", burst=burst)
        self._children: InProcessChildren | None = None
        self.worker = Worker(data, list(data.models_to_load), options, child_client=self._child_client, nvml=nvml)
        self.errors: list[str] = []

    def _child_client(self, *, liveness_timeout: float, events: EventLog) -> InProcessChildren:
        self._children = InProcessChildren(liveness_timeout=liveness_timeout, events=events)
        return self._children

    @property
    def events(self) -> EventLog:
        """Everything that happened to the worker's jobs and children."""
        return self.worker.events

    @property
    def children(self) -> InProcessChildren:
        """The worker's children (once it has started them)."""
        assert self._children is not None, "the worker has not started its children yet"
        return self._children

    def child(self, name: str) -> ChildHandle:
        """The running child called `name` (e.g. inference-1#2)."""
        [handle] = [handle for handle in self.children.children if handle.name == name]
        return handle

    @asynccontextmanager
    async def running(self, timeout: float = PROCESS_TIMEOUT_S) -> AsyncIterator[asyncio.Task[int]]:
        """The worker running in a task while the test acts on it (cancelled if the test fails meanwhile)."""
        task = asyncio.get_running_loop().create_task(self.run(timeout))
        try:
            yield task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def run(self, timeout: float = PROCESS_TIMEOUT_S) -> int:
        """Run the worker to its end; its exit status. The test process's own signal handlers are restored."""
        handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        sink = logger.add(lambda message: self.errors.append(str(message)), level="ERROR")
        try:
            return await asyncio.wait_for(self.worker.run(), timeout)
        finally:
            logger.remove(sink)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def of_kind(self, *kinds: EventKind) -> list[Event]:
        """The events of these kinds, oldest first."""
        return self.events.of_kind(*kinds)

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = PROCESS_TIMEOUT_S) -> Event:
        """The first event (past or to come) that satisfies `predicate`."""
        return await self.events.wait_for(predicate, timeout)
