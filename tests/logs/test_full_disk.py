"""A full disk under logs/: one clear ERROR on stderr, the process goes on, file logging resumes when
space returns. The disk is a 64 KiB tmpfs in a user and mount namespace of the process's own (no
privileges, the test machine's disk untouched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

LINES_WHILE_FULL = 300
MOUNT = 'mount -t tmpfs -o size=64k tmpfs "$0" || { echo "cannot mount a tmpfs over $0" >&2; exit 97; }; exec "$@"'

# Runs inside the namespace: logs, fills the disk, logs on, frees it, logs again, then reports.
SCRIPT = f"""
import sys
from pathlib import Path
from loguru import logger
from horde_worker_regen.logs.setup import configure_logging, install_process_hooks
from horde_worker_regen.logs import files

logs = Path(sys.argv[1])
files.RESUME_CHECK_S = 0.0  # try every line: the test frees the disk at a known point
files.RESUME_FREE_BYTES = 16 * 1024  # most of the 64 KiB disk
install_process_hooks()
configure_logging(logs, 0)
logger.info("before the disk filled")
filler = logs / "filler"
try:
    with filler.open("wb") as handle:
        while True:
            handle.write(b"x" * 4096)
            handle.flush()
except OSError:
    pass
for index in range({LINES_WHILE_FULL}):
    logger.info(f"while full {{index}}")
    logger.error(f"an error while full {{index}}")
print("still working", flush=True)
filler.unlink()
logger.info("after space returned")
logger.remove()
bridge = (logs / "bridge.log").read_text()
print("BRIDGE-HAS-AFTER", "after space returned" in bridge, flush=True)
print("BRIDGE-HAS-RESUMED", "File logging resumed" in bridge, flush=True)
print("BRIDGE-HAS-BEFORE", "before the disk filled" in bridge, flush=True)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_full_disk_pauses_file_logging_with_one_error_and_resumes(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, str(logs),
         sys.executable, "-c", SCRIPT, str(logs)],
        capture_output=True, text=True, env=environ, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line and "while full" not in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "Cannot write log files" in errors[0] and "No space left on device" in errors[0]
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr
    assert "still working" in result.stdout
    for check in ("BRIDGE-HAS-AFTER", "BRIDGE-HAS-RESUMED", "BRIDGE-HAS-BEFORE"):
        assert f"{check} True" in result.stdout, result.stdout
    resumed = [line for line in result.stderr.splitlines() if "File logging resumed" in line]
    assert len(resumed) == 1, resumed
    lost = int(resumed[0].split("; ")[1].split()[0])
    assert lost >= 2 * LINES_WHILE_FULL  # every line of bridge.log, and the errors of trace.log
