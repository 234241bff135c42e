"""Bridge-agent capabilities (horde-api.md §3.9) and the kudos multiplier that depends on them.

A worker is offered only the features its `bridge_agent` name and version claim. The agent is read as
the horde reads it: `name:version:url`, split on the first two colons (the URL may hold more), the
version a semantic version whose minor and patch may be left out (`bridge_version`); an agent with
fewer than two colons or a version that does not parse is `unknown` at version 0, with no capability
and the 0.75x factor. The capability sets are cumulative: a version gets every set whose key it
reaches (semver `>=`, so a pre-release of 13 does not reach 13).
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.localhorde.bridge_version import ZERO, BridgeVersion, parse_bridge_version

REGEN_NAME = "AI Horde Worker reGen"
LEGACY_NAME = "AI Horde Worker"
OFFICIAL_BRIDGES = (REGEN_NAME, LEGACY_NAME)

_REGEN_V1 = frozenset(
    {
        "img2img", "inpainting", "karras", "post-processing", "GFPGAN", "RealESRGAN_x4plus", "r2",
        "CodeFormers", "clip_skip", "r2_source", "controlnet", "strip_background", "return_control_map",
        "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp", "image_is_control",
        "RealESRGAN_x2plus", "hires_fix", "tiling",
    }
)  # fmt: skip
_REGEN_V13 = frozenset(
    {
        "4xNomos8kSC", "4xLSDIRplus", "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample",
        "4xNomos2_hq_dat2", "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer",
    }
)  # fmt: skip

BRIDGE_CAPABILITIES: dict[str, dict[int, frozenset[str]]] = {
    REGEN_NAME: {
        13: _REGEN_V13,
        9: frozenset({"flux"}),
        8: frozenset({"layer_diffuse"}),
        7: frozenset({"qr_code", "extra_texts", "workflow"}),
        6: frozenset({"stable_cascade_2pass"}),
        5: frozenset({"extra_source_images"}),
        3: frozenset({"lora_versions"}),
        2: frozenset({"textual_inversion", "lora"}),
        1: _REGEN_V1,
    },
    # The legacy worker's table as the horde keeps it (no tiling at any version).
    LEGACY_NAME: {
        24: frozenset({"textual_inversion"}),
        23: frozenset({"image_is_control"}),
        22: frozenset({"lora"}),
        21: frozenset({"RealESRGAN_x2plus"}),
        19: frozenset({"NMKD_Siax", "4x_AnimeSharp"}),
        18: frozenset({"strip_background", "return_control_map", "RealESRGAN_x4plus_anime_6B"}),
        15: frozenset({"controlnet"}),
        14: frozenset({"r2_source"}),
        13: frozenset({"hires_fix", "clip_skip"}),
        9: frozenset({"CodeFormers"}),
        8: frozenset({"r2"}),
        7: frozenset({"post-processing", "GFPGAN", "RealESRGAN_x4plus"}),
        6: frozenset({"karras"}),
        4: frozenset({"inpainting"}),
        3: frozenset({"img2img"}),
    },
}

KNOWN_SAMPLERS = (
    "k_lms", "k_heun", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a", "k_dpm_fast", "k_dpm_adaptive",
    "k_dpmpp_2s_a", "k_dpmpp_2m", "dpmsolver", "k_dpmpp_sde", "DDIM", "lcm",
)  # fmt: skip

# `AI Horde Worker` v23's table, used for every name without a sampler table of its own.
_LEGACY_KARRAS_SAMPLERS = frozenset(s for s in KNOWN_SAMPLERS if s.startswith("k_") or s == "dpmsolver")
_LEGACY_PLAIN_SAMPLERS = _LEGACY_KARRAS_SAMPLERS | {"DDIM"}

UNKNOWN_NAME = "unknown"


@dataclass(frozen=True)
class BridgeAgent:
    """A parsed `Name:version:url` bridge agent."""

    name: str
    version: BridgeVersion
    url: str

    @property
    def is_official(self) -> bool:
        """True for the two official worker names."""
        return self.name in OFFICIAL_BRIDGES


UNKNOWN_AGENT = BridgeAgent(UNKNOWN_NAME, ZERO, "")


def parse_bridge_agent(bridge_agent: str) -> BridgeAgent:
    """Split `Name:version:url` on the first two colons; fewer of them, or a version that does not parse,
    make the agent unknown (version 0)."""
    parts = bridge_agent.split(":", 2)
    if len(parts) < 3:
        return UNKNOWN_AGENT
    name, version, url = parts
    parsed = parse_bridge_version(version)
    if parsed is None:
        return UNKNOWN_AGENT
    return BridgeAgent(name=name, version=parsed, url=url)


def bridge_capabilities(bridge_agent: str) -> frozenset[str]:
    """Every capability the bridge agent's name and version claim (cumulative)."""
    agent = parse_bridge_agent(bridge_agent)
    table = BRIDGE_CAPABILITIES.get(agent.name, {})
    return frozenset(cap for key, caps in table.items() if agent.version.reaches(key) for cap in caps)


def level_introducing(capability: str, name: str = REGEN_NAME) -> int | None:
    """The key of `name`'s table that adds `capability` (None: no version of that bridge has it)."""
    return next((key for key, caps in BRIDGE_CAPABILITIES.get(name, {}).items() if capability in caps), None)


def check_bridge_capability(capability: str, bridge_agent: str) -> bool:
    """True if the bridge agent claims `capability`."""
    return capability in bridge_capabilities(bridge_agent)


def supported_samplers(bridge_agent: str, karras: bool) -> frozenset[str]:
    """Samplers the bridge can run, with or without karras."""
    agent = parse_bridge_agent(bridge_agent)
    if agent.name == REGEN_NAME and agent.version.reaches(2):
        if agent.version.reaches(3):
            return frozenset(KNOWN_SAMPLERS)
        return frozenset(s for s in KNOWN_SAMPLERS if s != "lcm")
    return _LEGACY_KARRAS_SAMPLERS if karras else _LEGACY_PLAIN_SAMPLERS


def latest_version(name: str) -> int | None:
    """The highest capability key of a known bridge name."""
    table = BRIDGE_CAPABILITIES.get(name)
    return max(table) if table else None


def bridge_kudos_multiplier(bridge_agent: str) -> float:
    """1.0 for the latest official bridge, 0.9 for an older official one, 0.75 otherwise."""
    agent = parse_bridge_agent(bridge_agent)
    if not agent.is_official:
        return 0.75
    newest = latest_version(agent.name)
    if newest is not None and agent.version.reaches(newest):
        return 1.0
    return 0.9
