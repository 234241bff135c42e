"""Model download benchmark: the downloader against a plain read, hashing, and the manifest check.

    .venv/bin/python -m bench.download_bench [--megabytes 512] [--write]

A local aiohttp server on loopback serves a file of `--megabytes` MB (`web.FileResponse`). Figures:
a plain aiohttp read of the body (thrown away) as the ceiling; `Downloader.fetch` with sha256 (write
to `.partial`, hash, rename); the same download cut once at half way and resumed; `sha256_of` alone
(what every start would pay without the manifest); `VerifiedManifest.is_verified` (what it pays
instead); the worst event-loop lag seen by a 1 ms timer during the downloads (the worker's loop also
moves jobs). Each time is the best of `--repeat` runs. Client and server share this process and its
CPUs, so the absolute MB/s understate what a separate server gives.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from horde_worker_regen.models.downloads import Downloader, sha256_of  # noqa: E402
from horde_worker_regen.models.manifest import VerifiedManifest  # noqa: E402
from horde_worker_regen.models.progress import ProgressLog  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
MB = 1024 * 1024


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=512, help="size of the served file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the best is kept)")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    return parser.parse_args()


async def _best(repeat: int, run: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - started)
    return best


class _LoopLag:
    """The longest the event loop was kept from a 1 ms timer while a download ran."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - started - 0.001)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.lags) or [0.0]
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _write_source(source: Path, size: int) -> None:
    with source.open("wb") as handle:
        for _ in range(size // MB):
            handle.write(os.urandom(MB))


def _app(source: Path, size: int, cut: dict[str, bool]) -> web.Application:
    """Serves `source`; while `cut["armed"]`, one full request is cut at half way."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if cut["armed"] and "Range" not in request.headers:
            cut["armed"] = False
            response = web.StreamResponse()
            response.content_length = size
            await response.prepare(request)
            with source.open("rb") as handle:
                await response.write(handle.read(size // 2))
            assert request.transport is not None
            request.transport.close()
            return response
        return web.FileResponse(source)

    app = web.Application()
    app.router.add_get("/file", serve)
    return app


async def _downloads(
    url: str, folder: Path, size: int, sha: str, *, repeat: int, cut: dict[str, bool]
) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def plain() -> None:
            async with session.get(url) as response:
                async for _chunk in response.content.iter_chunked(MB):
                    pass

        loader = Downloader(session, log=ProgressLog(every=3600))

        async def fetch() -> None:
            await loader.fetch(url, folder / "out.bin", sha256=sha, size=size)

        async def fetch_cut() -> None:
            cut["armed"] = True
            await fetch()

        figures["plain read"] = await _best(repeat, plain)
        lag = _LoopLag()
        ticker = asyncio.create_task(lag.run())
        figures["download + sha256"] = await _best(repeat, fetch)
        ticker.cancel()
        figures["event loop lag, p99"] = lag.percentile(0.99)
        figures["event loop lag, worst"] = max(lag.lags, default=0.0)
        figures["download cut at 50% + resume"] = await _best(repeat, fetch_cut)
    return figures


async def _measure(folder: Path, size: int, repeat: int) -> dict[str, float]:
    source = folder / "served.bin"
    await asyncio.to_thread(_write_source, source, size)
    sha = await asyncio.to_thread(sha256_of, source)
    cut = {"armed": False}
    server = TestServer(_app(source, size, cut))
    await server.start_server()
    try:
        figures = await _downloads(str(server.make_url("/file")), folder, size, sha, repeat=repeat, cut=cut)
    finally:
        await server.close()
    target = folder / "out.bin"
    figures["sha256 of the file"] = await _best(repeat, lambda: asyncio.to_thread(sha256_of, target))
    manifest = VerifiedManifest(folder / "manifest.json")
    manifest.record(target, sha)

    async def check() -> None:
        for _ in range(1000):
            manifest.is_verified(target, sha)

    figures["manifest check"] = await _best(repeat, check) / 1000
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    return figures


def _report(figures: dict[str, float], size: int, command: str) -> str:
    plain = figures["plain read"]
    lines = [
        f"### {datetime.date.today().isoformat()}: downloading a {size // MB} MB model file on loopback",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}",
        "",
        "| Figure | Time | MB/s | vs plain read |",
        "|---|---|---|---|",
    ]
    for name, seconds in figures.items():
        if name == "manifest check":
            lines.append(f"| {name} (per start, per file) | {seconds * 1e6:.0f} µs | | |")
            continue
        if name.startswith("event loop lag"):
            lines.append(f"| {name} (during download + sha256) | {seconds * 1000:.1f} ms | | |")
            continue
        lines.append(f"| {name} | {seconds:.2f} s | {size / MB / seconds:.0f} | {seconds / plain:.2f}x |")
    saved = figures["sha256 of the file"] / figures["manifest check"]
    lines += ["", f"The manifest check replaces a re-hash that is {saved:,.0f}x slower.", ""]
    return "\n".join(lines)


def main() -> None:
    args = _arguments()
    size = args.megabytes * MB
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(_measure(Path(folder), size, args.repeat))
    command = ".venv/bin/python -m bench.download_bench " + " ".join(sys.argv[1:])
    report = _report(figures, size, command.strip())
    print(report)
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + report)


if __name__ == "__main__":
    main()
