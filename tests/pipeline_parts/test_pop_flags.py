"""One list of pop flags: the pop request, the fault breaker and the features all derive from it."""

from __future__ import annotations

from typing import get_args

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request, pop_flag_values
from horde_worker_regen.jobs.pop_flags import FEATURE_FLAGS, POP_FLAG_NAMES, POP_FLAGS
from horde_worker_regen.jobs.spec import Feature
from horde_worker_regen.scheduling.breaker import BreakerSettings, Cause, FaultBreaker, pop_gate

DATA = BridgeData(api_key="k" * 22, inference_backend="fake")


def test_every_feature_a_job_may_need_has_a_pop_flag_that_refuses_it() -> None:
    assert set(FEATURE_FLAGS) == set(get_args(Feature))
    assert all(name.startswith("allow_") for name in POP_FLAG_NAMES)
    assert len(set(POP_FLAG_NAMES)) == len(POP_FLAGS)


def test_the_pop_request_sets_every_flag_of_the_list_from_the_configuration() -> None:
    request = build_pop_request(DATA, ["Deliberate"], bridge_agent(1))
    sent = request.model_dump()
    assert {name: sent[name] for name in POP_FLAG_NAMES} == pop_flag_values(DATA)


@pytest.mark.parametrize(
    ("settings", "flag", "value"),
    [
        ({"allow_img2img": False}, "allow_img2img", False),
        ({"allow_img2img": False, "allow_painting": True}, "allow_painting", False),  # painting needs img2img
        ({"allow_controlnet": False, "allow_sdxl_controlnet": True}, "allow_sdxl_controlnet", False),
        ({"allow_controlnet": True, "allow_sdxl_controlnet": True}, "allow_sdxl_controlnet", True),
        ({"allow_lora": True}, "allow_lora", True),
        ({"allow_unsafe_ip": False}, "allow_unsafe_ipaddr", False),
    ],
)
def test_each_flag_as_the_configuration_allows_it(settings: dict[str, bool], flag: str, value: bool) -> None:
    data = BridgeData(api_key="k" * 22, inference_backend="fake", **settings)
    assert pop_flag_values(data)[flag] is value


@pytest.mark.parametrize("feature", sorted(FEATURE_FLAGS))
def test_a_withdrawn_feature_turns_off_exactly_its_flags(feature: str) -> None:
    breaker = FaultBreaker(BreakerSettings(strikes=1))
    breaker.record(Cause.of("failing_feature", feature), "it failed", now=0.0)
    gate = pop_gate(breaker, ["Deliberate"], {}, now=1.0)
    assert gate.flags_off == frozenset(FEATURE_FLAGS[feature]) and gate.flags_off <= set(POP_FLAG_NAMES)
