"""The benchmark's output: one progress line per setting, the summary table and the bridgeData block."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from horde_worker_regen.benchmark.ramp import Measurement, Recommendation

MIB = 1024 * 1024


def _memory(measurement: Measurement) -> str:
    ram = f"{measurement.peak_ram_bytes / MIB:,.0f} MiB RAM"
    if measurement.peak_vram_bytes is None:
        return ram
    return f"{ram}, {measurement.peak_vram_bytes / MIB:,.0f} MiB VRAM"


def setting_label(measurement: Measurement) -> str:
    """`256x256 (max_power 2), n_iter 4, 1 thread`."""
    s = measurement.setting
    return (
        f"{s.size}x{s.size} (max_power {s.max_power}), n_iter {s.n_iter}, "
        f"{s.threads} thread{'s' if s.threads > 1 else ''}"
    )


def progress_line(phase: str, measurement: Measurement, stop: str | None) -> str:
    """The line printed as soon as a setting is measured."""
    line = (
        f"[{phase}] {setting_label(measurement)}: {measurement.mps_per_s:.3g} MPS/s, "
        f"{measurement.jobs_per_hour:,.0f} jobs/hr, {measurement.kudos_per_hour:,.0f} kudos/hr, "
        f"{measurement.seconds_per_job:.2f} s/job, peak {_memory(measurement)}"
    )
    return f"{line}; stop: {stop}" if stop else line


def table(measurements: Sequence[Measurement]) -> str:
    """Every setting measured, as a Markdown table."""
    rows = ["| setting | MPS/s | jobs/hr | kudos/hr | s/job | peak memory |", "|---|---|---|---|---|---|"]
    rows += [
        f"| {setting_label(m)} | {m.mps_per_s:.3g} | {m.jobs_per_hour:,.0f} | {m.kudos_per_hour:,.0f} | "
        f"{m.seconds_per_job:.2f} | {_memory(m)} |"
        for m in measurements
    ]
    return "\n".join(rows)


def explanation(item: Recommendation) -> str:
    """One line that reads alone: the key, the value recommended and why (`max_power 2: ...`)."""
    value = str(item.value).lower() if isinstance(item.value, bool) else item.value
    reason = " ".join(item.reason.split())  # one line, whatever the reason's wording
    return f"{item.key} {value}: {reason}"


def bridge_data_block(recommendations: Sequence[Recommendation]) -> str:
    """The recommended keys as ready-to-paste bridgeData YAML, each with its one-line explanation above it."""
    lines = ["# Recommended by `horde-bridge.sh benchmark`"]
    for item in recommendations:
        lines.append(f"# {explanation(item)}")
        lines.append(yaml.safe_dump({item.key: item.value}, default_flow_style=False).strip())
    return "\n".join(lines) + "\n"
