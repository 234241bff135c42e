"""One long-running worker (the real CLI, `run` without `--burst`) against the embedded local horde.

The benchmark feeds it blocks of identical requests and reads the timings from the horde's own records:
a block lasts from the first pop of its jobs to the last submit (`ProcessingGeneration.start_time` and
`submit_time`, both stamped by the horde), so the worker's start-up and its idle polling between blocks
are not counted. The kudos are the rewards the horde gave on those submits. Peak memory is the largest
resident set of the worker's whole process tree (main, inference and safety children) sampled with
psutil while the block ran; on CUDA the inference child's own figure is not visible from here, so VRAM
is read from `nvidia-smi` when present.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.entities import User, WaitingPrompt
from horde_worker_regen.localhorde.requester import queue_request
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde

BASELINE_NAME = "stable diffusion 1"  # the horde's name of the SD 1.5 baseline
POLL_INTERVAL_S = 0.1  # how often the horde's records are checked for the block's end (cheap)
MEMORY_INTERVAL_S = 1.0  # how often memory is sampled: walking the process tree costs CPU the worker would lose
DEAD_REFERENCE_URL = "http://127.0.0.1:9/none.json"  # the worker never fetches a model reference


@dataclass(frozen=True)
class Job:
    """What every request of a block asks for."""

    size: int
    steps: int
    n_iter: int = 1
    sampler: str = "k_euler"

    @property
    def megapixelsteps(self) -> float:
        """Megapixel-steps of one request (all its images)."""
        return self.size * self.size * self.steps * self.n_iter / 1_000_000

    def body(self, model: str, seed: int) -> dict[str, Any]:
        """The `/v2/generate/async` body of one request."""
        return {"prompt": "a lighthouse on a cliff", "models": [model], "params": {
            "width": self.size, "height": self.size, "steps": self.steps, "n": self.n_iter, "seed": str(seed),
            "sampler_name": self.sampler, "karras": False, "cfg_scale": 5.0}}  # fmt: skip


@dataclass(frozen=True)
class BlockResult:
    """A block of requests as the horde saw it served."""

    requests: int
    images: int
    seconds: float  # first pop to last submit
    kudos: float
    peak_ram_bytes: int
    peak_vram_bytes: int | None


class WorkerFailed(RuntimeError):
    """The worker exited or stopped serving; the message names its log folder."""


def worker_environment() -> dict[str, str]:
    """The worker's environment: no AIWORKER_* overrides from the caller, this checkout's code, no network."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    root = str(Path(__file__).resolve().parents[2])
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, environ.get("PYTHONPATH", "")) if p)
    environ["HORDE_MODEL_REFERENCE_URL"] = DEAD_REFERENCE_URL
    return environ


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 for those that vanished meanwhile)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def _nvidia_smi_mib_as_bytes(field: str) -> int | None:
    """A memory `field` of the first GPU (`nvidia-smi --query-gpu`, in MiB) as bytes; None without an NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
                            capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    lines = result.stdout.split()
    return int(float(lines[0]) * 1024 * 1024) if result.returncode == 0 and lines else None


def vram_used_bytes() -> int | None:
    """GPU memory in use on the machine (`nvidia-smi`), or None without an NVIDIA GPU."""
    return _nvidia_smi_mib_as_bytes("memory.used")


class BenchSession:
    """The local horde (in this process) and one worker subprocess serving `model`."""

    def __init__(self, horde: RunningLocalHorde, folder: Path, model: str) -> None:
        self.horde = horde
        self.folder = folder
        self.model = model
        self.owner: User = horde.add_user("owner", trusted=True)
        self.requester: User = horde.add_user("requester", trusted=True, kudos=1e12)
        self._process: asyncio.subprocess.Process | None = None
        self._seed = 0

    def write_bridge_data(self, template: dict[str, Any], settings: dict[str, Any]) -> Path:
        """bridgeData.yaml for the worker: `template` with this horde, key and model, then `settings`."""
        data = {**template, "api_key": self.owner.api_key, "horde_url": self.horde.api_url,
                "dreamer_name": "benchmark", "models_to_load": [self.model], **settings}  # fmt: skip
        path = self.folder / "bridgeData.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    async def start(self) -> None:
        """Start the worker; it idles polling the empty horde until a block is queued.

        Its console output goes to `worker.out` in the folder, next to its `logs/`.
        """
        with (self.folder / "worker.out").open("wb") as console:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "horde_worker_regen",
                "run",
                "--logs-dir",
                str(self.folder / "logs"),
                cwd=self.folder,
                env=worker_environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def stop(self, timeout: float = 60.0) -> None:
        """Ask the worker to finish (SIGINT, as Ctrl+C) and wait; kill it if it does not."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    def queue(self, job: Job, count: int) -> list[WaitingPrompt]:
        """Queue `count` requests of `job` (distinct seeds)."""
        queued = []
        for _ in range(count):
            self._seed += 1
            queued.append(queue_request(self.horde.horde, self.requester, job.body(self.model, self._seed)))
        return queued

    async def run_block(self, job: Job, count: int, timeout: float, sample_memory: bool = True) -> BlockResult:
        """Queue `count` requests and wait until the worker has submitted every image of them.

        `sample_memory=False` leaves the worker's CPU alone entirely (for overhead measurements).
        """
        if self._process is None:
            raise WorkerFailed("the worker was not started")
        process = psutil.Process(self._process.pid)
        requests = self.queue(job, count)
        peak_ram, peak_vram = 0, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_sample = loop.time()
        while True:
            generations = [pg for wp in requests for pg in self.horde.state.generations_of(wp)]
            done = [pg for pg in generations if pg.submit_time is not None]
            if len(done) == count * job.n_iter:
                break
            if self._process.returncode is not None:
                raise WorkerFailed(
                    f"the worker exited with status {self._process.returncode}; see "
                    f"{self.folder / 'worker.out'} and {self.folder / 'logs'}"
                )
            if loop.time() > deadline:
                raise WorkerFailed(
                    f"{len(done)} of {count * job.n_iter} images submitted after {timeout:.0f}s; "
                    f"see {self.folder / 'logs'}"
                )
            if sample_memory and loop.time() >= next_sample:
                next_sample = loop.time() + MEMORY_INTERVAL_S
                peak_ram = max(peak_ram, tree_rss(process))
                if (vram := vram_used_bytes()) is not None:
                    peak_vram = max(peak_vram or 0, vram)
            await asyncio.sleep(POLL_INTERVAL_S)  # polling the horde's records, not synchronising
        first_pop = min(pg.start_time for pg in done)
        last_submit = max(pg.submit_time or 0.0 for pg in done)
        return BlockResult(
            requests=count,
            images=len(done),
            seconds=last_submit - first_pop,
            kudos=sum(pg.reward for pg in done),
            peak_ram_bytes=peak_ram,
            peak_vram_bytes=peak_vram,
        )


@contextlib.asynccontextmanager
async def bench_horde(folder: Path, model: str) -> AsyncIterator[BenchSession]:
    """A local horde that knows `model` (SD 1.5), with a session ready to write bridgeData and start the worker."""
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        horde.horde.register_model(model, BASELINE_NAME)
        session = BenchSession(horde, folder, model)
        try:
            yield session
        finally:
            await session.stop()


def vram_total_bytes() -> int | None:
    """The GPU's memory (`nvidia-smi`), or None without an NVIDIA GPU."""
    return _nvidia_smi_mib_as_bytes("memory.total")
