"""The worker's process tree, watched with psutil from the worker's PID.

Every descendant ever seen is remembered (with its creation time, so a reused PID is not mistaken
for it); after the worker has exited, any of them still running is an orphan. The tree is sampled
in the background so that a descendant that lives only briefly is remembered too; nothing waits on
that sampling: a wait for a process's exit is woken by the exit itself (`exited`), a wait for a new
child by the child showing itself (`next_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path

import psutil

from tests.chaos.folder_watch import FolderWatch

WATCH_INTERVAL_S = 0.1
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
            # A sampling period, to remember short-lived descendants for the orphan count at the end;
            # nothing waits for this loop to see something.
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def next_child(self, known: set[int], working_folder: Path, timeout: float) -> psutil.Process:
        """The first descendant not in `known`, once the worker has started one (TimeoutError after `timeout` s).

        The worker runs in `working_folder`, and so do the children it spawns: each is a fresh Python
        (`python -c ...`, so its working folder leads `sys.path`) that lists that folder on its first
        import, a few tens of milliseconds into its life and long before it has imported its own code,
        let alone said it is ready. Each opening in the folder is the cue to look at the tree again."""
        with FolderWatch(working_folder) as watch:
            async with asyncio.timeout(timeout):
                while True:
                    for child in self.sample():
                        if child.pid not in known:
                            return child
                    await watch.opened()

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
        exits when it sees the worker's end of its pipe close) up to `timeout` s to exit."""
        leaving = [self.seen[pid] for pid in self.orphans()]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(exited(process) for process in leaving))

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


async def exited(process: psutil.Process) -> None:
    """Return once `process` has exited; a zombie has (it only waits for its parent to reap it).

    Woken by the exit itself: a pidfd (Linux 5.3) becomes readable when its process exits. Not
    `psutil.wait_procs`: for a process that is not this one's child it waits until the process is
    reaped, checking on a timer, and an orphan is reaped by PID 1, which may take its time."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return  # gone, and reaped
    try:
        if not process.is_running():
            return  # its PID was reused before the pidfd was opened: the process watched is gone
        loop = asyncio.get_running_loop()
        exit_seen: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exit_seen.done():  # the pidfd stays readable until it is closed
                exit_seen.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            await exit_seen
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def child_pids(lines: list[str]) -> dict[str, int]:
    """name (`safety`, `inference-0`, ...) → the PID of its latest incarnation, from the worker's log."""
    latest: dict[str, tuple[int, int]] = {}
    for line in lines:
        if match := READY.search(line):
            incarnation, pid = int(match["incarnation"]), int(match["pid"])
            if match["name"] not in latest or latest[match["name"]][0] < incarnation:
                latest[match["name"]] = (incarnation, pid)
    return {name: pid for name, (_, pid) in latest.items()}
