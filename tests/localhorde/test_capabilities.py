"""Bridge-agent parsing, cumulative capabilities, sampler tables and the kudos multiplier (§3.9)."""

from __future__ import annotations

import pytest

from horde_worker_regen.localhorde.capabilities import (
    KNOWN_SAMPLERS,
    bridge_capabilities,
    bridge_kudos_multiplier,
    parse_bridge_agent,
    supported_samplers,
)


def regen(version: str) -> str:
    return f"AI Horde Worker reGen:{version}:https://example.invalid"


def test_parse_needs_two_colons() -> None:
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1:https://x").name == "AI Horde Worker reGen"
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1:https://x").version == (10, 1, 1)
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1").name == "unknown"
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1").version is None


@pytest.mark.parametrize(
    ("version", "has", "lacks"),
    [
        ("1.0.0", {"img2img", "r2", "r2_source", "controlnet", "hires_fix"}, {"lora", "textual_inversion"}),
        ("2.0.0", {"lora", "textual_inversion", "img2img"}, {"lora_versions"}),
        ("4.2.0", {"lora_versions"}, {"extra_source_images"}),
        ("5.0.0", {"extra_source_images"}, {"stable_cascade_2pass"}),
        ("7.0.0", {"qr_code", "extra_texts", "workflow", "stable_cascade_2pass"}, {"layer_diffuse"}),
        ("9.0.0", {"flux", "layer_diffuse"}, {"RestoreFormer"}),
        ("12.9.9", {"flux"}, {"4xNomos8kSC", "GFPGANv1.3"}),
        ("13.0.0", {"4xNomos8kSC", "RestoreFormer", "flux", "img2img"}, set()),
    ],
)
def test_regen_capabilities_are_cumulative(version: str, has: set[str], lacks: set[str]) -> None:
    caps = bridge_capabilities(regen(version))
    assert has <= caps
    assert not (lacks & caps)


def test_unknown_bridge_has_no_capability_at_all() -> None:
    assert bridge_capabilities("MyWorker:99.0.0:https://x") == frozenset()
    assert bridge_capabilities("unknown:0:unknown") == frozenset()


def test_regen_v2_samplers_are_all_but_lcm_v3_adds_it() -> None:
    assert supported_samplers(regen("2.0.0"), karras=True) == frozenset(KNOWN_SAMPLERS) - {"lcm"}
    assert supported_samplers(regen("2.0.0"), karras=False) == frozenset(KNOWN_SAMPLERS) - {"lcm"}
    assert supported_samplers(regen("3.0.0"), karras=True) == frozenset(KNOWN_SAMPLERS)


def test_unknown_bridges_use_the_legacy_sampler_table() -> None:
    with_karras = supported_samplers("x:1:y", karras=True)
    without = supported_samplers("x:1:y", karras=False)
    assert "k_dpmpp_sde" in with_karras and "dpmsolver" in with_karras
    assert "DDIM" not in with_karras and "DDIM" in without
    assert "lcm" not in with_karras and "lcm" not in without


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (regen("13.0.0"), 1.0),
        (regen("13.2.1"), 1.0),
        (regen("10.1.1"), 0.9),
        ("AI Horde Worker:24.0.0:https://x", 1.0),
        ("AI Horde Worker:5.0.0:https://x", 0.9),
        ("Something Else:13.0.0:https://x", 0.75),
        ("unknown:0:unknown", 0.75),
    ],
)
def test_bridge_kudos_multiplier(agent: str, expected: float) -> None:
    assert bridge_kudos_multiplier(agent) == expected
