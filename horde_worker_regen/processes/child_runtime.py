"""What every child process does around its work: logging, signals, an IO thread, the work loop.

The IO thread reads the pipe continuously, so the parent's sends never wait on a busy child, and
answers `Ping` at once: liveness says the process is alive and responsive, whatever its backend
is doing. Work messages are queued for the work loop, which answers each with one message.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from loguru import logger

from horde_worker_regen.devices.report import DeviceReport
from horde_worker_regen.logs.hooks import capture_child_output, install_exception_hooks
from horde_worker_regen.logs.setup import configure_logging
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildFailed,
    ChildMessage,
    ChildReady,
    Ping,
    Pong,
    Preload,
    RunForm,
    RunJob,
    Shutdown,
)

Work = RunJob | CheckImages | Preload | RunForm
WorkHandler = Callable[[Work], ChildMessage]


@dataclass(frozen=True)
class ChildLogging:
    """How a child sets up its logs: the same folder and level as the parent, its own files."""

    logs_dir: Path
    verbosity: int
    process_index: int
    secrets: tuple[str, ...] = field(default=(), repr=False)
    console: bool = True  # False while the terminal UI owns the terminal: the child's lines go to its files only


def prepare_child_process(settings: ChildLogging) -> None:
    """Ignore SIGINT (Ctrl+C reaches the whole process group; the parent decides) and set up logs.

    Whatever the child's libraries print (ComfyUI, torch, a C extension) goes to its trace log, not
    to the operator's console; the child's own lines still reach the console, redacted (unless the terminal UI
    owns it: then only the files)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console = capture_child_output()
    install_exception_hooks()
    configure_logging(
        settings.logs_dir,
        settings.verbosity,
        process_index=settings.process_index,
        secrets=settings.secrets,
        console=settings.console,
        console_stream=console,
    )


class ChildLink:
    """The child's end of the pipe: a locked sender and a reader thread feeding a work queue."""

    def __init__(self, connection: Connection, incarnation: int) -> None:
        self.incarnation = incarnation
        self._connection = connection
        self._send_lock = threading.Lock()
        self._work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_forever, name="child-io", daemon=True)

    def start(self) -> None:
        """Start the IO thread."""
        self._reader.start()

    def send(self, message: ChildMessage) -> bool:
        """Send one message (thread-safe); False if the parent is gone."""
        try:
            with self._send_lock:
                self._connection.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False
        return True

    def next_work(self) -> Work | None:
        """Block until the next job; None means stop (Shutdown, or the parent went away)."""
        return self._work.get()

    def _read_forever(self) -> None:
        while True:
            try:
                message = self._connection.recv()
            except (EOFError, OSError):
                self._work.put(None)  # the parent is gone: stop after the current work
                return
            if isinstance(message, Ping):
                self.send(Pong(self.incarnation, message.sequence))
            elif isinstance(message, Shutdown):
                self._work.put(None)
                return
            elif isinstance(message, RunJob | CheckImages | Preload | RunForm):
                self._work.put(message)
            else:
                logger.warning(f"Unexpected message {type(message).__name__} ignored")


def serve(
    link: ChildLink,
    backend_name: str,
    handle: WorkHandler,
    device: DeviceReport | None = None,
    post_processors: tuple[str, ...] = (),
) -> None:
    """Announce readiness (the GPU this child is pinned to, the level-13 post-processors it runs), then
    answer work until told to stop."""
    link.start()
    link.send(ChildReady(link.incarnation, os.getpid(), backend_name, device, post_processors))
    while (work := link.next_work()) is not None:
        if not link.send(handle(work)):
            return


def report_startup_failure(link: ChildLink, error: BaseException) -> None:
    """Tell the parent why this child cannot serve, before exiting."""
    logger.exception(f"Child process could not start: {error}")
    link.send(ChildFailed(link.incarnation, f"{type(error).__name__}: {error}"))
