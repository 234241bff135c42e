"""Bridge-agent parsing, cumulative capabilities, sampler tables and the kudos multiplier (§3.9)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from horde_worker_regen.localhorde.bridge_version import BridgeVersion, parse_bridge_version
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
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1:https://x").version == BridgeVersion(10, 1, 1)
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1").name == "unknown"
    assert parse_bridge_agent("AI Horde Worker reGen:10.1.1").version == BridgeVersion(0)


def test_the_url_may_hold_colons_and_only_the_first_two_split() -> None:
    agent = parse_bridge_agent("AI Horde Worker reGen:13:https://github.com:443/x:y")
    assert (agent.name, agent.version, agent.url) == (
        "AI Horde Worker reGen",
        BridgeVersion(13),
        "https://github.com:443/x:y",
    )


@pytest.mark.parametrize(
    "version", ["v13", "V13.0.0", "13.x", "", " 13", "13 ", "013", "13.0.0.0", "13-", "13+", "1.2.3-01"]
)
def test_a_version_the_server_cannot_parse_makes_the_agent_unknown(version: str) -> None:
    agent = parse_bridge_agent(f"AI Horde Worker reGen:{version}:https://x")
    assert (agent.name, agent.version) == ("unknown", BridgeVersion(0))
    assert bridge_capabilities(f"AI Horde Worker reGen:{version}:https://x") == frozenset()


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("13", BridgeVersion(13)),
        ("13.2", BridgeVersion(13, 2)),
        ("13.0.0+dev.gabc", BridgeVersion(13)),
        ("13.0.0-beta.1", BridgeVersion(13, 0, 0, ("beta", "1"))),
        ("1.0.0-0.3.7", BridgeVersion(1, 0, 0, ("0", "3", "7"))),
        ("1.0.0-x-y-z.--", BridgeVersion(1, 0, 0, ("x-y-z", "--"))),
    ],
)
def test_versions_parse_as_semver_with_optional_minor_and_patch(text: str, version: BridgeVersion) -> None:
    assert parse_bridge_version(text) == version


def _version(text: str) -> BridgeVersion:
    parsed = parse_bridge_version(text)
    assert parsed is not None, text
    return parsed


def test_precedence_follows_semver() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1", "2", "13.0.0-beta.1", "13"]  # fmt: skip
    parsed = [_version(text) for text in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert all(lower < higher and not higher <= lower for lower, higher in itertools.pairwise(parsed))


@given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.text("abc01", min_size=1, max_size=4))
def test_a_pre_release_never_reaches_its_own_release(major: int, minor: int, patch: int, tag: str) -> None:
    assume(not (tag.isdigit() and len(tag) > 1 and tag.startswith("0")))
    pre = parse_bridge_version(f"{major}.{minor}.{patch}-{tag}")
    release = parse_bridge_version(f"{major}.{minor}.{patch}+build.{tag}")
    assert pre is not None and release == BridgeVersion(major, minor, patch)
    assert pre < release and not release < pre
    assert release.reaches(major)
    assert pre.reaches(major) == ((minor, patch) > (0, 0))


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
        (regen("13"), 1.0),
        (regen("13.0.0-beta.1"), 0.9),
        (regen("v13"), 0.75),
        ("Something Else:13.0.0:https://x", 0.75),
        ("unknown:0:unknown", 0.75),
    ],
)
def test_bridge_kudos_multiplier(agent: str, expected: float) -> None:
    assert bridge_kudos_multiplier(agent) == expected
