"""The worker's process tree, watched with psutil from the worker's PID.

Every descendant ever seen is remembered (with its creation time, so a reused PID is not mistaken
for it); after the worker has exited, any of them still running is an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal

import psutil

WATCH_INTERVAL_S = 0.1
# While waiting for a new child (to kill it before it is ready), look more often.
FAST_INTERVAL_S = 0.02
# "<name>#<incarnation> ready (pid <pid>, backend <backend>)", as the supervisor logs a child it started.
READY = re.compile(r"(?P<name>[a-z]+(?:-\d+)?)#(?P<incarnation>\d+) ready \(pid (?P<pid>\d+)")


class ProcessWatch:
    """Descendants of one worker process, sampled until it exits."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.seen: dict[int, psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> ProcessWatch:
        """Begin sampling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def close(self) -> None:
        """Stop sampling (after one last look)."""
        self.sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def sample(self) -> list[psutil.Process]:
        """The live descendants now; new ones are remembered."""
        try:
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            if child.pid not in self.seen:
                self.seen[child.pid] = child
        return children

    async def _watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(WATCH_INTERVAL_S)  # a sampling period, not a wait for an event

    async def next_child(self, known: set[int], timeout: float) -> psutil.Process:
        """The first descendant not in `known` (waiting, sampling often, for the worker to start one)."""

        async def scan() -> psutil.Process:
            while True:
                for child in self.sample():
                    if child.pid not in known:
                        return child
                await asyncio.sleep(FAST_INTERVAL_S)  # a sampling period, not a wait for an event

        return await asyncio.wait_for(scan(), timeout)

    def orphans(self) -> list[int]:
        """Descendants still running (zombies count as gone: they only wait to be reaped)."""
        alive = []
        for pid, process in self.seen.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive

    async def wait_gone(self, timeout: float) -> None:
        """Give descendants that are on their way out (e.g. multiprocessing's resource tracker, which
        exits when it sees the worker's end of its pipe close) up to `timeout` s to be gone."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.orphans():
                    await asyncio.sleep(FAST_INTERVAL_S)  # a polling period: their exit is what is waited for

    def describe(self, pid: int) -> str:
        """`pid (status, command line)` of a descendant, for a report."""
        process = self.seen[pid]
        try:
            return f"{pid} ({process.status()}, {' '.join(process.cmdline())[:120]})"
        except psutil.Error as error:
            return f"{pid} ({type(error).__name__})"

    def kill_orphans(self) -> None:
        """Clean-up after a failed scenario, so one failure does not leave processes behind."""
        for pid in self.orphans():
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen[pid].send_signal(signal.SIGKILL)


def child_pids(lines: list[str]) -> dict[str, int]:
    """name (`safety`, `inference-0`, ...) → the PID of its latest incarnation, from the worker's log."""
    latest: dict[str, tuple[int, int]] = {}
    for line in lines:
        if match := READY.search(line):
            incarnation, pid = int(match["incarnation"]), int(match["pid"])
            if match["name"] not in latest or latest[match["name"]][0] < incarnation:
                latest[match["name"]] = (incarnation, pid)
    return {name: pid for name, (_, pid) in latest.items()}
