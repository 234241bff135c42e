"""The benchmark's ramp, stop and recommendation rules (pure functions, made-up measurements)."""

from __future__ import annotations

import yaml

from horde_worker_regen.benchmark.ramp import (
    Limits,
    Measurement,
    Setting,
    job_ttl,
    max_power_for,
    next_in,
    next_size,
    recommend,
    stop_reason,
    too_slow_for,
)
from horde_worker_regen.benchmark.report import bridge_data_block, explanation, progress_line
from horde_worker_regen.config.bridge_data import BridgeData

GIB = 1024**3
LIMITS = Limits(total_ram_bytes=16 * GIB)


def measured(
    size: int, mps: float, *, n_iter: int = 1, threads: int = 1, ram_gib: float = 2.0, steps: int = 10, jobs: int = 4
) -> Measurement:
    """A measurement whose throughput is `mps` megapixel-steps per second."""
    seconds = jobs * n_iter * size * size * steps / 1_000_000 / mps
    return Measurement(
        Setting(size, n_iter, threads), steps, jobs, seconds, kudos=jobs * 2.0, peak_ram_bytes=int(ram_gib * GIB)
    )


def test_max_power_covers_the_size() -> None:
    assert [max_power_for(size) for size in (64, 256, 512, 513, 768, 1024)] == [1, 2, 8, 9, 18, 32]


def test_ttl_follows_the_horde_formula() -> None:
    assert job_ttl(512, 30) == 150  # 30 + 30*2*1 = 90, raised to the 150 floor
    assert job_ttl(1024, 50) == 30 + 50 * 2 * 4
    assert job_ttl(512, 30, extra_slow=True) == 450


def test_measurement_figures() -> None:
    m = Measurement(Setting(512, 2, 1), steps=10, jobs=3, seconds=60.0, kudos=30.0, peak_ram_bytes=0)
    assert round(m.mps_per_s, 4) == round(6 * 512 * 512 * 10 / 1e6 / 60, 4)
    assert m.jobs_per_hour == 180 and m.kudos_per_hour == 1800 and m.seconds_per_job == 20


def test_sizes_grow_while_throughput_improves() -> None:
    history = [measured(64, 0.1)]
    assert next_size(history, LIMITS) == 128
    history.append(measured(128, 0.3))
    assert stop_reason(history, LIMITS) is None
    assert next_size(history, LIMITS) == 256


def test_sizes_stop_when_throughput_stops_improving() -> None:
    history = [measured(64, 0.1), measured(128, 0.3), measured(256, 0.31)]
    assert "not 5% over 0.3" in (stop_reason(history, LIMITS) or "")
    assert next_size(history, LIMITS) is None


def test_sizes_stop_when_memory_runs_out() -> None:
    history = [measured(64, 0.1), measured(128, 0.5, ram_gib=15.0)]
    assert "memory" in (stop_reason(history, LIMITS) or "")
    assert next_size(history, LIMITS) is None


def test_vram_counts_where_known() -> None:
    limits = Limits(total_ram_bytes=16 * GIB, total_vram_bytes=8 * GIB)
    m = measured(64, 0.1)
    on_gpu = Measurement(m.setting, m.steps, m.jobs, m.seconds, m.kudos, m.peak_ram_bytes, peak_vram_bytes=8 * GIB)
    assert "memory" in (stop_reason([on_gpu], limits) or "")
    assert stop_reason([m], limits) is None


def test_a_size_that_would_time_out_is_not_tried() -> None:
    # At 0.02 MPS/s a 30-step 256x256 job takes ~98 s, inside half its extra-slow ttl (450 s / 2);
    # at 0.005 MPS/s it would take ~393 s, so 256 is not worth measuring.
    assert next_size([measured(64, 0.01), measured(128, 0.02)], LIMITS) == 256
    assert next_size([measured(64, 0.004), measured(128, 0.005)], LIMITS) is None


def test_batches_and_threads_follow_their_options() -> None:
    batches = [measured(256, 0.5)]
    assert next_in((1, 2, 4, 8), batches, "n_iter", LIMITS) == 2
    batches.append(measured(256, 0.8, n_iter=2))
    assert next_in((1, 2, 4, 8), batches, "n_iter", LIMITS) == 4
    batches.append(measured(256, 0.7, n_iter=4))
    assert next_in((1, 2, 4, 8), batches, "n_iter", LIMITS) is None
    assert next_in((1,), [measured(256, 0.5)], "threads", LIMITS) is None


def test_recommendation_picks_the_best_that_fits_and_says_why() -> None:
    sizes = [measured(64, 0.2), measured(128, 0.6), measured(256, 1.2), measured(512, 1.25)]
    batches = [sizes[2], measured(256, 2.0, n_iter=2), measured(256, 1.9, n_iter=4)]
    threads = [sizes[2], measured(256, 1.1, threads=2)]
    result = {item.key: item for item in recommend(sizes, batches, threads, LIMITS)}
    assert result["max_power"].value == 8  # 512x512: 30 steps at 1.25 MPS/s = 6 s, well inside 150 s
    assert result["max_batch"].value == 2
    assert result["max_threads"].value == 1
    assert result["queue_size"].value == 1
    assert result["extra_slow_worker"].value is False
    assert all(item.reason for item in result.values())


def test_a_slow_machine_is_told_to_be_extra_slow_and_keep_jobs_small() -> None:
    sizes = [measured(64, 0.02), measured(128, 0.05), measured(256, 0.06)]
    result = {item.key: item for item in recommend(sizes, [], [], LIMITS)}
    assert result["extra_slow_worker"].value is True
    # 256x256 at 0.06 MPS/s: 30 steps take 33 s, within half the extra-slow ttl of 450 s
    assert result["max_power"].value == 2
    assert result["max_batch"].value == 1 and result["max_threads"].value == 1


def test_short_jobs_get_a_second_queued_job() -> None:
    result = {item.key: item for item in recommend([measured(64, 0.5)], [], [], LIMITS)}
    assert result["queue_size"].value == 2


def test_the_block_is_bridge_data() -> None:
    sizes = [measured(64, 0.2), measured(128, 0.6)]
    block = bridge_data_block(recommend(sizes, [], [], LIMITS))
    values = yaml.safe_load(block)
    assert set(values) == {"max_power", "max_batch", "max_threads", "queue_size", "extra_slow_worker"}
    BridgeData.model_validate(values)
    assert block.count("\n# ") == 5  # a reason above every key


def test_progress_line_names_the_setting_and_the_figures() -> None:
    line = progress_line("batch", measured(256, 1.5, n_iter=4), "memory reached 90% of the machine's")
    assert line.startswith("[batch] 256x256 (max_power 2), n_iter 4, 1 thread: 1.5 MPS/s")
    assert "kudos/hr" in line and line.endswith("stop: memory reached 90% of the machine's")


def test_a_machine_too_slow_for_any_size_gets_the_smallest_power_and_the_reason() -> None:
    sizes = [measured(64, 0.0003)]  # a 30-step 64x64 job: ~410 s, over half of the 450 s extra-slow ttl
    power = recommend(sizes, [], [], LIMITS)[0]
    assert power.value == 1
    assert "over 50% of its 450s ttl" in power.reason
    assert "would take about" in (too_slow_for(128, sizes) or "")


def test_every_recommendation_is_explained_in_one_line_that_names_its_value() -> None:
    for sizes in ([measured(64, 0.0003)], [measured(64, 0.2), measured(128, 0.6)], [measured(512, 3.0)]):
        recommendations = recommend(sizes, [], [], LIMITS)
        block = bridge_data_block(recommendations)
        for item in recommendations:
            line = explanation(item)
            assert "\n" not in line and len(line.split(": ", 1)[1]) > 20, line
            value = str(item.value).lower() if isinstance(item.value, bool) else str(item.value)
            assert line.startswith(f"{item.key} {value}: ")
            assert f"# {line}\n{item.key}: {value}\n" in block
    floor = explanation(recommend([measured(64, 0.0003)], [], [], LIMITS)[0])
    assert floor.startswith("max_power 1: the smallest value the horde takes, because even a 30-step 64x64 job")
