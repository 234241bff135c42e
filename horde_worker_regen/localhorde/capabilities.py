"""Bridge-agent capabilities (horde-api.md §3.9) and the kudos multiplier that depends on them.

A worker is offered only the features its `bridge_agent` name and version claim. The capability sets
are cumulative: a version gets every set whose key it reaches (semver `>=`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    # The legacy worker's own table is not part of the contract; its late versions could do what
    # reGen v2 does, so it is modelled that way.
    LEGACY_NAME: {
        20: frozenset({"textual_inversion", "lora"}),
        1: _REGEN_V1,
    },
}

KNOWN_SAMPLERS = (
    "k_lms", "k_heun", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a", "k_dpm_fast", "k_dpm_adaptive",
    "k_dpmpp_2s_a", "k_dpmpp_2m", "dpmsolver", "k_dpmpp_sde", "DDIM", "lcm",
)  # fmt: skip

# `AI Horde Worker` v23's table, used for every name without a sampler table of its own.
_LEGACY_KARRAS_SAMPLERS = frozenset(s for s in KNOWN_SAMPLERS if s.startswith("k_") or s == "dpmsolver")
_LEGACY_PLAIN_SAMPLERS = _LEGACY_KARRAS_SAMPLERS | {"DDIM"}

_VERSION_RE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True)
class BridgeAgent:
    """A parsed `Name:version:url` bridge agent."""

    name: str
    version: tuple[int, int, int] | None
    url: str

    @property
    def is_official(self) -> bool:
        """True for the two official worker names."""
        return self.name in OFFICIAL_BRIDGES


def parse_bridge_agent(bridge_agent: str) -> BridgeAgent:
    """Split `Name:version:url`; fewer than two colons leaves the name unknown."""
    parts = bridge_agent.split(":", 2)
    if len(parts) < 3:
        return BridgeAgent(name="unknown", version=None, url="")
    name, version, url = parts
    match = _VERSION_RE.match(version)
    parsed = None
    if match:
        parsed = (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))
    return BridgeAgent(name=name, version=parsed, url=url)


def bridge_capabilities(bridge_agent: str) -> frozenset[str]:
    """Every capability the bridge agent's name and version claim (cumulative)."""
    agent = parse_bridge_agent(bridge_agent)
    table = BRIDGE_CAPABILITIES.get(agent.name)
    if table is None or agent.version is None:
        return frozenset()
    capabilities: set[str] = set()
    for key, caps in table.items():
        if agent.version >= (key, 0, 0):
            capabilities |= caps
    return frozenset(capabilities)


def check_bridge_capability(capability: str, bridge_agent: str) -> bool:
    """True if the bridge agent claims `capability`."""
    return capability in bridge_capabilities(bridge_agent)


def supported_samplers(bridge_agent: str, karras: bool) -> frozenset[str]:
    """Samplers the bridge can run, with or without karras."""
    agent = parse_bridge_agent(bridge_agent)
    if agent.name == REGEN_NAME and agent.version is not None and agent.version >= (2, 0, 0):
        if agent.version >= (3, 0, 0):
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
    if not agent.is_official or agent.version is None:
        return 0.75
    newest = latest_version(agent.name)
    if newest is not None and agent.version >= (newest, 0, 0):
        return 1.0
    return 0.9
