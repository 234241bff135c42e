"""One chaos scenario: a local horde, the real worker CLI (one or more runs of it), faults, and at
the end a row of figures for the table and the scenario's invariants (no id lost, no orphan
process, no worker crash).

A scenario waits for conditions with `wait_until`, which checks its condition again on each event
that can change what the condition reads (`ChaosRun.changes`): a request the horde handled, a sweep,
a hit on a hostile route, a line the worker printed, a worker's exit. Nothing is polled on a timer.

    async with ChaosRun("network", tmp_path, chaos_table, max_threads=2) as run:
        run.queue("a lake", n=2)
        run.fault("submit", "drop", times=1)
        worker = await run.start_worker()
        await run.wait_settled()
        await run.stop_worker(worker)
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from horde_worker_regen.localhorde.changes import StateChanges
from horde_worker_regen.localhorde.entities import User, WaitingPrompt
from horde_worker_regen.localhorde.faults import FaultRule
from horde_worker_regen.localhorde.requester import queue_request
from tests.chaos.horde import ChaosHorde, HostileServer
from tests.chaos.ledger import Accounting, account
from tests.chaos.processes import READY, ProcessWatch, child_pids, exited
from tests.chaos.table import ChaosTable, ScenarioRow
from tests.support import REPO_ROOT
from tests.worker_support import WorkerProcess, queue, worker_folder

SETTLE_TIMEOUT_S = 90.0
# A process of the worker's tree still running this long after the worker exited is an orphan.
ORPHAN_GRACE_S = 5.0
# How long a failure report waits for the rest of an exited worker's output (its children may hold the pipe).
OUTPUT_END_WAIT_S = 5.0


class ChaosWorker(WorkerProcess):
    """The worker CLI with its PID, its process tree watched, and the exit status it is allowed; `on_change`
    is told of each line it prints, the end of its output and its exit."""

    watch: ProcessWatch
    expected_status: frozenset[int] = frozenset({0})
    status: int | None = None
    wrapper: tuple[str, ...] = ()  # a command the worker's command line is handed to (it must exec it)

    def __init__(self, folder: Path, on_change: Callable[[], None]) -> None:
        super().__init__(folder)
        self.on_change = on_change
        self._exit: asyncio.Task[int] | None = None

    async def start(self, *args: str) -> ChaosWorker:
        """Start `run` (through `wrapper`, if any) with `--logs-dir <folder>/logs` and the given arguments."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
        environ.update({"PYTHONPATH": str(REPO_ROOT), "HORDE_MODEL_REFERENCE_URL": "http://127.0.0.1:9/none.json"})
        command = [sys.executable, "-m", "horde_worker_regen", "run", "--logs-dir", str(self.folder / "logs"), *args]
        self._process = await asyncio.create_subprocess_exec(
            *self.wrapper,
            *command,
            cwd=self.folder,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        self._reader.add_done_callback(lambda _: self.on_change())
        self._exit = asyncio.create_task(self._process.wait())
        self._exit.add_done_callback(lambda _: self.on_change())
        return self

    async def _read(self) -> None:
        """Gather the output (as the base class does), telling `on_change` of each line."""
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new_line.set()
            self.on_change()
        self._new_line.set()

    @property
    def process_exited(self) -> bool:
        """True once the worker's main process has exited (its output may still be on its way)."""
        return self._exit is not None and self._exit.done()

    async def final_output(self) -> str:
        """The output of an exited worker, once it has all been read (or after OUTPUT_END_WAIT_S)."""
        assert self._reader is not None
        await asyncio.wait([self._reader], timeout=OUTPUT_END_WAIT_S)
        return self.output

    def children(self) -> dict[str, int]:
        """name (`safety`, `inference-0`, ...) → PID of its latest incarnation, from the log."""
        return child_pids(self.lines)

    async def wait_for_line_after(self, text: str, start: int, timeout: float = SETTLE_TIMEOUT_S) -> int:
        """Index of the first line at or after `start` containing `text` (waiting for it)."""

        async def scan() -> int:
            seen = start
            while True:
                for index in range(seen, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                seen = max(seen, len(self.lines))
                assert self._reader is not None
                if self._reader.done():
                    raise AssertionError(f"the worker exited without printing {text!r}:\n{self.output[-5000:]}")
                self._new_line.clear()
                await self._new_line.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_for_ready(self, name: str, start: int, timeout: float = SETTLE_TIMEOUT_S) -> int:
        """PID of the first child `name` (`safety`, `inference-1`, ...) announced ready at or after line `start`."""
        index = start
        while True:
            index = await self.wait_for_line_after(f"{name}#", index, timeout)
            if (match := READY.search(self.lines[index])) and match["name"] == name:
                return int(match["pid"])
            index += 1

    def crash_evidence(self) -> list[str]:
        """Why this run counts as a worker crash: an unexpected exit status, or a traceback anywhere."""
        evidence = []
        if self.status not in self.expected_status:
            evidence.append(f"exit status {self.status} (expected {sorted(self.expected_status)})")
        if any("Traceback" in line for line in self.lines):
            evidence.append("a traceback on the console")
        logs = self.folder / "logs"
        for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            if "Traceback" in path.read_text(errors="replace"):
                evidence.append(f"a traceback in {path.name}")
        return evidence


class ChaosRun:
    """A scenario's horde, worker runs, faults and accounting."""

    def __init__(self, name: str, tmp_path: Path, table: ChaosTable, **settings: Any) -> None:
        self.name = name
        self.folder = tmp_path
        self.table = table
        self.settings = settings
        # Every event a condition of `wait_until` may read is announced here.
        self.changes = StateChanges()
        self.chaos = ChaosHorde(on_hit=self.changes.notify)
        self.chaos.horde.changes.subscribe(self.changes.notify)
        self.hostile = HostileServer(on_hit=self.changes.notify)
        self.requests: list[WaitingPrompt] = []
        self.workers: list[ChaosWorker] = []
        self.rules: list[tuple[str, FaultRule]] = []
        self.external: collections.Counter[str] = collections.Counter()
        self.owner: User
        self.requester: User

    async def __aenter__(self) -> ChaosRun:
        await self.chaos.start()
        await self.hostile.start()
        self.owner = self.chaos.horde.add_user("owner", trusted=True)
        self.requester = self.chaos.horde.add_user("requester", trusted=True, kudos=100_000_000)
        worker_folder(self.folder, self.chaos.running, self.owner, **self.settings)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for worker in self.workers:
            if worker.status is None:
                await worker.kill()
                worker.status = await worker.wait()
            await worker.watch.close()
            await worker.watch.wait_gone(ORPHAN_GRACE_S)
        row = self.row()
        for worker in self.workers:
            worker.watch.kill_orphans()
        await self.chaos.stop()
        await self.hostile.stop()
        self.table.add(row)
        if error is None:
            self.check(row)

    # --- driving the scenario ----------------------------------------------------------------------

    def queue(self, prompt: str, *, model: str | None = None, **params: Any) -> WaitingPrompt:
        """Queue a request (from a user other than the worker's owner, so maintenance applies to it)."""
        if model is None:
            wp = queue(self.chaos.running, self.requester, prompt, **params)
        else:
            body = {"prompt": prompt, "models": [model], "params": params}
            wp = queue_request(self.chaos.horde, self.requester, body)
        self.requests.append(wp)
        return wp

    def fault(self, endpoint: str, kind: str, **fields: Any) -> FaultRule:
        """Switch a fault on in the horde; it is counted each time it fires."""
        rule = self.chaos.horde.faults.add(endpoint=endpoint, kind=kind, **fields)
        label = f"{endpoint} {kind}" + (f" {rule.status}" if kind == "error" else "")
        self.rules.append((label, rule))
        return rule

    def injected(self, label: str, count: int = 1) -> None:
        """Count a fault the scenario injected itself (a signal, the horde going down, ...)."""
        self.external[label] += count

    async def start_worker(
        self, *args: str, verbose: bool = True, wrapper: tuple[str, ...] = (), expected_status: int = 0
    ) -> ChaosWorker:
        """Start the worker CLI (`-v`: job starts are logged) and watch its process tree."""
        worker = ChaosWorker(self.folder, self.changes.notify)
        worker.wrapper = wrapper
        worker.expected_status = frozenset({expected_status})
        await worker.start(*(("-v",) if verbose else ()), *args)
        worker.watch = ProcessWatch(worker.pid).start()
        self.workers.append(worker)
        return worker

    async def stop_worker(self, worker: ChaosWorker, signum: signal.Signals = signal.SIGTERM) -> int:
        """Stop the worker as an operator would and wait for its exit."""
        worker.send_signal(signum)
        return await self.wait_exit(worker)

    async def wait_exit(self, worker: ChaosWorker, timeout: float = SETTLE_TIMEOUT_S) -> int:
        """The worker's exit status, once it has exited."""
        worker.status = await worker.wait(timeout)
        return worker.status

    async def wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT_S, *, needs_worker: bool = True
    ) -> None:
        """Wait for a condition on the horde's state, the hostile routes' hits or the workers' output: it is
        checked now and after each event announced in `changes`. Give up at once if it `needs_worker` and no
        worker runs any more."""

        def worker_gone() -> bool:
            return needs_worker and bool(self.workers) and all(worker.process_exited for worker in self.workers)

        try:
            await self.changes.wait_for(lambda: condition() or worker_gone(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}") from None
        if not condition():
            output = await self.workers[-1].final_output()
            if not condition():  # the rest of its output may have been what the condition waited for
                raise AssertionError(f"the worker exited while waiting for {what}:\n{output[-5000:]}")

    async def wait_exited(self, process: psutil.Process, what: str, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait for a process of the worker's tree to exit (`wait_until`, woken by that exit too)."""
        exit_seen = asyncio.create_task(exited(process))
        exit_seen.add_done_callback(lambda _: self.changes.notify())
        try:
            await self.wait_until(exit_seen.done, what, timeout)
            exit_seen.result()  # an error watching it, if any
        finally:
            exit_seen.cancel()

    def accounting(self) -> Accounting:
        """Where every id handed out so far ended (from the horde's state and the worker's logs)."""
        lines = [line for worker in self.workers for line in worker.lines]
        return account(self.chaos.horde, self.chaos.ledger, lines)

    def settled(self, requests: list[WaitingPrompt] | None = None) -> bool:
        """Every request (of `requests`, default all) done or given up by the horde, and every id handed
        out for them has ended."""
        requests = self.requests if requests is None else requests
        if any(wp.n > 0 and not wp.faulted for wp in requests):
            return False
        lost = set(self.accounting().lost)
        return not any(pg.id in lost for wp in requests for pg in self.chaos.horde.state.generations_of(wp))

    async def wait_settled(
        self, requests: list[WaitingPrompt] | None = None, timeout: float = SETTLE_TIMEOUT_S
    ) -> None:
        """Wait until `settled(requests)`."""
        await self.wait_until(lambda: self.settled(requests), "the requests to be served and every id to end", timeout)

    # --- the verdict -------------------------------------------------------------------------------

    def row(self) -> ScenarioRow:
        """The scenario's figures."""
        faults: collections.Counter[str] = collections.Counter()
        for label, rule in self.rules:
            if rule.fired:
                faults[label] += rule.fired
        faults.update(self.external)
        for marker, count in self.chaos.tamper.fired.items():
            faults[f"payload {marker}"] += count
        crashes = [f"run {n + 1}: {why}" for n, w in enumerate(self.workers) for why in w.crash_evidence()]
        orphans = [worker.watch.describe(pid) for worker in self.workers for pid in worker.watch.orphans()]
        unfired = [label for label, rule in self.rules if not rule.fired]
        return ScenarioRow(self.name, faults, self.accounting(), orphans, crashes, unfired)

    @staticmethod
    def check(row: ScenarioRow) -> None:
        """The invariants every scenario must hold."""
        assert not row.unfired, f"{row.name}: faults that never fired: {row.unfired}"
        assert row.accounting.lost == [], f"{row.name}: ids lost: {row.accounting.lost}"
        doubles = row.accounting.double_reports
        assert doubles == {}, f"{row.name}: ids reported more than once: {doubles}"
        assert row.orphans == [], f"{row.name}: processes left running: {row.orphans}"
        assert row.crashes == [], f"{row.name}: worker crashes: {row.crashes}"
