"""The capability level the bridge agent claims: pure policy, properties over every combination of inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.horde.credit import bridge_kudos_factor
from horde_worker_regen.horde.pop import REGEN_BRIDGE_NAME
from horde_worker_regen.inference.capabilities import (
    FAKE_CAPABILITY_VERSION,
    HORDELIB_CAPABILITY_VERSION,
    REGEN_CAPABILITIES_BY_VERSION,
)
from horde_worker_regen.localhorde.capabilities import bridge_capabilities, bridge_kudos_multiplier
from horde_worker_regen.models.post_processor_files import LEVEL_13_POST_PROCESSORS
from horde_worker_regen.worker.bridge_level import (
    LEVEL_13_NAMES,
    LevelInputs,
    decide_bridge_level,
    highest_level_below,
)

EIGHT = frozenset(LEVEL_13_NAMES)
names = st.frozensets(st.sampled_from(sorted(EIGHT)))
hordelib_inputs = st.builds(
    LevelInputs,
    backend=st.just("hordelib"),
    backend_level=st.just(HORDELIB_CAPABILITY_VERSION),
    allow_post_processing=st.booleans(),
    wanted=names,
    ready=names,
    servable=st.none() | names,
    failures=st.dictionaries(st.sampled_from(sorted(EIGHT)), st.just("checksum mismatch"), max_size=3),
    bytes_to_download=st.integers(0, 2_000_000_000),
)


def _all_servable(inputs: LevelInputs) -> bool:
    return inputs.wanted >= EIGHT and inputs.ready >= EIGHT and inputs.servable is not None and inputs.servable >= EIGHT


ALL_SERVABLE = LevelInputs("hordelib", HORDELIB_CAPABILITY_VERSION, True, EIGHT, EIGHT, EIGHT)


def _hordelib(**fields: Any) -> LevelInputs:
    """Every one of the eight servable, but for `fields`."""
    return replace(ALL_SERVABLE, **fields)


def test_the_level_13_names_are_the_catalogues_eight() -> None:
    assert EIGHT == LEVEL_13_POST_PROCESSORS and len(EIGHT) == 8


@given(hordelib_inputs)
def test_never_13_while_a_level_13_post_processor_cannot_be_served_and_post_processing_is_asked_for(
    inputs: LevelInputs,
) -> None:
    claimed = decide_bridge_level(inputs)
    if inputs.allow_post_processing and not _all_servable(inputs):
        assert claimed.level < 13
        assert not EIGHT & bridge_capabilities(claimed.agent)  # the horde would send none of their jobs
    else:
        assert claimed.level == 13 and bridge_capabilities(claimed.agent) >= EIGHT


@given(hordelib_inputs)
def test_below_13_the_claim_is_9_the_highest_level_hordelib_honours_without_the_eight(inputs: LevelInputs) -> None:
    claimed = decide_bridge_level(inputs)
    assert claimed.level in (9, 13)
    assert claimed.level in REGEN_CAPABILITIES_BY_VERSION
    assert claimed.reason


@given(hordelib_inputs)
def test_the_kudos_factor_is_what_the_horde_pays_for_the_agent_claimed(inputs: LevelInputs) -> None:
    claimed = decide_bridge_level(inputs)
    assert claimed.kudos_factor == bridge_kudos_factor(REGEN_BRIDGE_NAME, claimed.level)
    assert claimed.kudos_factor == bridge_kudos_multiplier(claimed.agent)  # the local horde's own rule
    assert claimed.kudos_factor == (1.0 if claimed.level == 13 else 0.9)


@given(hordelib_inputs, names, names)
def test_more_files_or_loaders_never_lower_the_level(
    inputs: LevelInputs, landed: frozenset[str], loads: frozenset[str]
) -> None:
    before = decide_bridge_level(inputs)
    servable = None if inputs.servable is None else inputs.servable | loads
    after = decide_bridge_level(
        LevelInputs(
            inputs.backend,
            inputs.backend_level,
            inputs.allow_post_processing,
            inputs.wanted,
            inputs.ready | landed,
            servable,
            inputs.failures,
            inputs.bytes_to_download,
        )
    )
    assert after.level >= before.level


@given(st.booleans(), names, names, st.none() | names)
def test_a_backend_below_13_claims_its_own_level_whatever_the_files(
    allow: bool, wanted: frozenset[str], ready: frozenset[str], servable: frozenset[str] | None
) -> None:
    claimed = decide_bridge_level(LevelInputs("fake", FAKE_CAPABILITY_VERSION, allow, wanted, ready, servable))
    assert (claimed.level, claimed.kudos_factor, claimed.waiting) == (1, 0.9, False)
    assert "fake backend" in claimed.reason


def test_all_eight_servable_claims_13_at_full_kudos() -> None:
    claimed = decide_bridge_level(_hordelib())
    assert (claimed.level, claimed.kudos_factor, claimed.waiting) == (13, 1.0, False)
    assert claimed.agent == "AI Horde Worker reGen:13:https://github.com/Haidra-Org/horde-worker-reGen"


def test_post_processing_off_claims_13_and_says_the_horde_sends_no_such_job() -> None:
    claimed = decide_bridge_level(_hordelib(allow_post_processing=False, wanted=frozenset(), ready=frozenset()))
    assert (claimed.level, claimed.kudos_factor) == (13, 1.0)
    assert "no post-processing jobs" in claimed.reason


def test_files_still_to_download_wait_with_their_size() -> None:
    claimed = decide_bridge_level(
        _hordelib(ready=EIGHT - {"RestoreFormer", "GFPGANv1.3", "4xNomos8kSC"}, bytes_to_download=706_428_441)
    )
    assert (claimed.level, claimed.kudos_factor, claimed.waiting) == (9, 0.9, True)
    assert "3 level-13 post-processors are on disk and verified" in claimed.reason and "706 MB" in claimed.reason


def test_a_skipped_name_keeps_9_for_good_and_says_how_to_reach_13() -> None:
    claimed = decide_bridge_level(_hordelib(wanted=EIGHT - {"4xNomos2_hq_dat2"}, ready=EIGHT - {"4xNomos2_hq_dat2"}))
    assert (claimed.level, claimed.waiting) == (9, False)
    assert "models_to_skip" in claimed.reason and "4xNomos2_hq_dat2" in claimed.reason


def test_a_refused_file_and_a_missing_loader_are_named() -> None:
    refused = decide_bridge_level(_hordelib(ready=EIGHT - {"4xLSDIRplus"}, failures={"4xLSDIRplus": "sha256 mismatch"}))
    assert (refused.level, refused.waiting) == (9, False) and "4xLSDIRplus: sha256 mismatch" in refused.reason
    unloadable = decide_bridge_level(_hordelib(servable=EIGHT - {"RestoreFormer"}))
    assert (unloadable.level, unloadable.waiting) == (9, False) and "RestoreFormer" in unloadable.reason
    unchecked = decide_bridge_level(_hordelib(servable=None))
    assert (unchecked.level, unchecked.waiting) == (9, True)


def test_the_level_below_13_comes_from_the_hordes_table() -> None:
    assert highest_level_below(13, 13) == 9  # keys 10 to 12 do not exist
    assert highest_level_below(13, 7) == 7
    assert highest_level_below(13, 1) == 1


def test_the_reason_names_what_is_missing_or_says_all_eight() -> None:
    nothing = decide_bridge_level(_hordelib(ready=frozenset(), bytes_to_download=1_183_694_366))
    assert (
        nothing.reason == "level 13 once the 8 level-13 post-processors are on disk and verified (1,184 MB to download)"
    )
    one = decide_bridge_level(_hordelib(ready=EIGHT - {"RestoreFormer"}))
    assert one.reason == "level 13 once 1 level-13 post-processor is on disk and verified (RestoreFormer, to verify)"
