"""Progress bars of downloads and start-up steps."""

from __future__ import annotations

from collections.abc import Iterator

from horde_worker_regen.models.progress import DownloadProgress, StepProgress, progress_bar


def test_the_bar_is_proportional_and_clamped() -> None:
    assert progress_bar(0, 10) == "[" + "-" * 20 + "]"
    assert progress_bar(5, 10) == "[" + "#" * 10 + "-" * 10 + "]"
    assert progress_bar(15, 10) == "[" + "#" * 20 + "]"
    assert progress_bar(3, 0) == "[" + "-" * 20 + "]"
    assert progress_bar(1, 4, width=8) == "[##------]"


def test_a_download_line_carries_its_bar() -> None:
    progress = DownloadProgress("model.safetensors", total_bytes=1000, done_bytes=250, started_at=0.0, now=1.0)
    assert progress.describe().startswith("model.safetensors: [#####---------------] 25% (0.0 of 0.0 MB)")
    unknown = DownloadProgress("model.safetensors", total_bytes=None, done_bytes=250, started_at=0.0, now=1.0)
    assert "[" not in unknown.describe()


def test_a_start_up_step_logs_one_line_per_part(caplog_loguru: list[str]) -> None:
    ticks: Iterator[float] = iter([100.0, 101.5, 103.0])
    step = StepProgress("Starting processes", 2, clock=lambda: next(ticks))
    step.advance("safety")
    step.advance("inference-1")
    assert [line.strip() for line in caplog_loguru if "Starting processes" in line] == [
        "Starting processes [##########----------] 1/2 (1.5 s): safety",
        "Starting processes [####################] 2/2 (3.0 s): inference-1",
    ]
