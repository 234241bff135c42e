"""`run --tui` as an operator runs it: the real CLI in a terminal (a pseudo-terminal, 80x24) against the local
horde, with real child processes. Nothing is printed over the screen while it is up; q asks, q again stops the
worker gracefully (exit 0), and the terminal then shows the run's last log lines."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.worker_support import PROCESS_TIMEOUT_S, horde_with_users, worker_folder

ENTER_SCREEN, LEAVE_SCREEN = b"\x1b[?1049h", b"\x1b[?1049l"
# A console log line as loguru prints it on a terminal: its time in green, then the level.
CONSOLE_LINE = re.compile(rb"\x1b\[32m\d\d:\d\d:\d\d\x1b\[0m \| ")


class Terminal:
    """A pseudo-terminal of 80x24 running one command, its output read as it comes."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self._master, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = os.environ | {"TERM": "xterm-256color", "PYTHONPATH": str(Path.cwd())}
        self.process = subprocess.Popen(argv, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env,
                                        start_new_session=True)  # fmt: skip
        os.close(follower)
        self.output = b""

    async def read_until(self, wanted: bytes, timeout: float = PROCESS_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while wanted not in self.output:
            assert time.monotonic() < deadline, f"{wanted!r} never came; output ends {self.output[-400:]!r}"
            try:
                self.output += await loop.run_in_executor(None, os.read, self._master, 65536)
            except OSError:  # the command ended and closed the terminal
                assert wanted in self.output, f"{wanted!r} never came; output ends {self.output[-400:]!r}"

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    async def exit_status(self) -> int:
        status = await asyncio.to_thread(self.process.wait, PROCESS_TIMEOUT_S)
        try:
            while chunk := os.read(self._master, 65536):
                self.output += chunk
        except OSError:
            pass
        os.close(self._master)
        return status


async def test_run_tui_draws_without_console_lines_and_q_q_stops_the_worker(tmp_path: Path) -> None:
    async with horde_with_users() as (horde, owner, _requester):
        folder = worker_folder(tmp_path, horde, owner)
        terminal = Terminal([sys.executable, "-m", "horde_worker_regen", "run", "--tui"], folder)
        try:
            await terminal.read_until(ENTER_SCREEN)
            await terminal.read_until(b"Pipeline Test Dreamer")
            await terminal.read_until(b"serving")
            terminal.type(b"q")
            await terminal.read_until(b"press q again")
            terminal.type(b"q")
            status = await terminal.exit_status()
        finally:
            if terminal.process.poll() is None:
                terminal.process.kill()
    before, rest = terminal.output.split(ENTER_SCREEN, 1)
    on_screen, after = rest.split(LEAVE_SCREEN, 1)
    assert status == 0
    assert CONSOLE_LINE.search(before) is not None  # the configuration's warning, before the screen is up
    assert CONSOLE_LINE.search(on_screen) is None  # no console line (parent's or a child's) over the screen
    assert b"SIGINT received" in after  # the last lines held while the screen was up, printed after it
    assert b"Worker stopped (exit status 0)" in after
