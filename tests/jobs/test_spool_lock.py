"""One worker per spool folder: the default folder is the worker's own, and a second taker is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.pipeline.spool_lock import LOCK_NAME, SpoolInUse, SpoolLock

HOLD = """
import sys
from pathlib import Path
from horde_worker_regen.pipeline.spool_lock import SpoolLock
lock = SpoolLock.take(Path(sys.argv[1]), "first")
print("locked", flush=True)
sys.stdin.read()  # hold it until the test closes our stdin
"""


def test_workers_sharing_a_cache_home_get_their_own_spool_folders(tmp_path: Path) -> None:
    first = BridgeData(api_key="k" * 22, dreamer_name="Night Owl", cache_home=tmp_path)
    second = BridgeData(api_key="k" * 22, dreamer_name="../Day/Owl", cache_home=tmp_path)
    assert first.spool_folder == tmp_path / "spool" / "Night_Owl"
    assert second.spool_folder == tmp_path / "spool" / "Day_Owl"  # no way out of cache_home/spool
    explicit = BridgeData(api_key="k" * 22, dreamer_name="Night Owl", spool_dir=tmp_path / "mine")
    assert explicit.spool_folder == tmp_path / "mine"


def test_a_spool_folder_held_by_another_process_is_refused_until_it_exits(tmp_path: Path) -> None:
    folder = tmp_path / "spool" / "Night_Owl"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(SpoolInUse) as refused:
            SpoolLock.take(folder, "Night Owl")
        message = str(refused.value)
        assert str(folder) in message and "'Night Owl'" in message and "another worker is already running" in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    lock = SpoolLock.take(folder, "Night Owl")  # the holder's exit released it
    with pytest.raises(SpoolInUse):
        SpoolLock.take(folder, "Night Owl")  # the same worker started twice in one process is refused too
    lock.release()
    SpoolLock.take(folder, "Night Owl").release()
    assert (folder / LOCK_NAME).is_file()


def test_a_folder_that_cannot_be_created_does_not_stop_the_worker(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder's parent should be")
    SpoolLock.take(blocker / "spool", "Night Owl").release()  # warned about; the spool reports its own failures
