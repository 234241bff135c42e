"""The fault breaker as a pure policy: strikes, cool-down, the rolling-hour cap, pop gating, all withdrawn."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.jobs.spec import GenerationSpec
from horde_worker_regen.scheduling.breaker import (
    BreakerSettings,
    Cause,
    FaultBreaker,
    Subject,
    all_withdrawn,
    features_of,
    pop_gate,
)

MISSING = Cause.of("missing_model", "Broken")
BROKEN, HEALTHY = Subject("Broken"), Subject("Healthy")
SPEC = GenerationSpec("j", "Healthy", "a fox", 512, 512, 20, 1, 7, "k_euler", 7.0, False, None, (), "txt2img")


def breaker(cooldown_s: float | None = 600.0, **settings: int) -> FaultBreaker:
    return FaultBreaker(BreakerSettings(cooldown_s=cooldown_s, **settings))


def test_two_deterministic_faults_withdraw_the_model_until_the_cooldown_passes() -> None:
    fuse = breaker()
    assert fuse.record(MISSING, "Model Broken not found on disk!", now=0.0) is None
    assert fuse.suspect(BROKEN)
    withdrawal = fuse.record(MISSING, "Model Broken not found on disk!", now=1.0)
    assert withdrawal is not None and not withdrawal.by_cap and withdrawal.until == 601.0
    assert pop_gate(fuse, ["Healthy", "Broken"], {}, now=2.0).models == ["Healthy"]
    assert fuse.record(MISSING, "again", now=3.0) is None  # a held job ending: no second withdrawal
    assert fuse.reinstate(600.0) == []
    assert fuse.reinstate(601.0) == [withdrawal]
    assert pop_gate(fuse, ["Healthy", "Broken"], {}, now=601.0).models == ["Healthy", "Broken"]
    assert not fuse.suspect(BROKEN)  # the strikes start again after the cool-down


def test_a_success_in_between_resets_the_strikes() -> None:
    fuse = breaker()
    fuse.record(MISSING, "x", now=0.0)
    fuse.succeeded([BROKEN])
    assert fuse.record(MISSING, "x", now=1.0) is None
    assert fuse.strikes_of(MISSING) == 1


def test_without_a_cooldown_a_withdrawal_lasts_until_restart() -> None:
    fuse = breaker(cooldown_s=None)
    fuse.record(MISSING, "x", now=0.0)
    withdrawal = fuse.record(MISSING, "x", now=0.0)
    assert withdrawal is not None and withdrawal.until is None
    assert fuse.reinstate(10.0 * 86_400) == []
    assert BROKEN in fuse.withdrawn


def test_crashes_follow_the_quarantine_strikes() -> None:
    fuse = breaker(crash_strikes=3)
    crash = Cause.of("crashing_model", "Broken")
    assert fuse.record(crash, "lost", 0.0) is None and fuse.record(crash, "lost", 1.0) is None
    assert fuse.record(crash, "lost", 2.0) is not None


def test_the_rolling_cap_withdraws_a_transient_cause_at_ten_ids_an_hour() -> None:
    fuse = breaker()
    timeout = Cause.of("transient", "Healthy")
    for minute in range(9):
        assert fuse.record(timeout, "too slow", now=minute * 60.0) is None
    withdrawal = fuse.record(timeout, "too slow", now=540.0)
    assert withdrawal is not None and withdrawal.by_cap and withdrawal.faults == 10


def test_the_cap_counts_ids_within_the_rolling_hour_only() -> None:
    fuse = breaker()
    timeout = Cause.of("transient", "Healthy")
    fuse.record(timeout, "slow", now=0.0, ids=6)
    assert fuse.room(HEALTHY, now=100.0) == 4
    assert fuse.room(HEALTHY, now=3600.0) == 10  # an hour later the faults have aged out
    assert fuse.record(timeout, "slow", now=3600.0, ids=6) is None


def test_a_model_is_offered_only_while_the_ids_held_fit_in_its_room() -> None:
    fuse = breaker(batch=2)
    fuse.record(Cause.of("transient", "Healthy"), "slow", now=0.0, ids=7)  # room 3
    assert pop_gate(fuse, ["Healthy"], {HEALTHY: 1}, now=1.0).models == ["Healthy"]  # 1 + 2 <= 3
    assert pop_gate(fuse, ["Healthy"], {HEALTHY: 2}, now=1.0).models == []
    assert fuse.next_change(now=1.0) == 3599.0  # when the first fault ages out


def test_a_suspect_model_holds_one_job_at_a_time() -> None:
    fuse = breaker()
    fuse.record(MISSING, "x", now=0.0)
    assert pop_gate(fuse, ["Broken"], {}, now=1.0).models == ["Broken"]
    assert pop_gate(fuse, ["Broken"], {BROKEN: 1}, now=1.0).models == []


def test_a_failing_feature_turns_its_pop_flags_off() -> None:
    fuse = breaker()
    failing = Cause.of("failing_feature", "controlnet")
    assert failing.subject == Subject("controlnet", feature=True)
    fuse.record(failing, "x", 0.0)
    fuse.record(failing, "x", 1.0)
    gate = pop_gate(fuse, ["Healthy"], {}, now=2.0)
    assert gate.models == ["Healthy"]
    assert gate.flags_off == {"allow_controlnet", "allow_sdxl_controlnet"}


def test_all_withdrawn_only_when_every_served_model_is() -> None:
    fuse = breaker()
    fuse.record(MISSING, "x", 0.0)
    fuse.record(MISSING, "x", 0.0)
    assert not all_withdrawn(fuse, ["Broken", "Healthy"])
    assert all_withdrawn(fuse, ["Broken"])
    assert not all_withdrawn(fuse, [])
    assert fuse.next_change(now=0.0) == 600.0  # the popper waits until the cool-down ends


def test_the_features_a_job_needs() -> None:
    assert features_of(SPEC) == frozenset()
    job = replace(
        SPEC,
        post_processing=("GFPGAN",),
        source_processing="inpainting",
        payload={"loras": [{"name": "1"}], "control_type": "canny"},
    )
    assert features_of(job) == {"post_processing", "inpainting", "lora", "controlnet"}
    assert features_of(replace(SPEC, source_processing="img2img")) == {"img2img"}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["transient", "missing_model", "failing_feature"]),
            st.sampled_from(["Broken", "Healthy", "lora"]),
            st.floats(0, 7200),
            st.integers(1, 4),
        ),
        max_size=60,
    )
)
def test_no_cause_faults_more_ids_in_an_hour_than_the_cap(
    faults: list[tuple[str, str, float, int]],
) -> None:
    """Fed in time order and popping only what the gate allows, a cause never passes the cap within an hour."""
    fuse = breaker(batch=4)
    counted: dict[Cause, list[tuple[float, int]]] = {}
    for kind, name, now, ids in sorted(faults, key=lambda fault: fault[2]):
        cause = Cause.of(kind, name)  # type: ignore[arg-type]
        fuse.reinstate(now)
        if not fuse.offerable(cause.subject, 0, now):
            continue  # the job would never have been popped
        fuse.record(cause, "x", now, ids)
        window = [(t, n) for t, n in counted.setdefault(cause, []) if t > now - 3600.0]
        counted[cause] = [*window, (now, ids)]
        assert sum(n for _, n in counted[cause]) <= 10
