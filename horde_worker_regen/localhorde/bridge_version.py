"""Bridge versions as the horde reads them: semantic versions whose minor and patch may be left out.

`13` is 13.0.0 and `13.2` is 13.2.0. A pre-release sorts *below* its release (`13.0.0-beta.1` is not
13), build metadata is ignored (`13.0.0+dev.gabc` is 13.0.0), and anything else (a `v` prefix,
leading zeros, spaces, words) does not parse: the horde then treats the whole agent as unknown.
Precedence follows the semantic-versioning rules: numeric pre-release identifiers compare as
numbers and below alphanumeric ones, and a longer list of identifiers is higher when the shorter one
is its prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"0|[1-9]\d*"
_IDENTIFIER = r"0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*"
_VERSION = re.compile(
    rf"(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER})(?:\.(?P<patch>{_NUMBER}))?)?"
    rf"(?:-(?P<prerelease>(?:{_IDENTIFIER})(?:\.(?:{_IDENTIFIER}))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)

# A pre-release identifier's place in the order: numbers first (by value), then words (by ASCII).
_Rank = tuple[int, int, str]


def _rank(identifier: str) -> _Rank:
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)


@dataclass(frozen=True)
class BridgeVersion:
    """`major.minor.patch[-prerelease]`; build metadata is not kept (it never changes the order)."""

    major: int
    minor: int = 0
    patch: int = 0
    prerelease: tuple[str, ...] = ()

    def _key(self) -> tuple[int, int, int, int, tuple[_Rank, ...]]:
        # A release (no pre-release) sorts above every pre-release of the same major.minor.patch.
        released = 0 if self.prerelease else 1
        return (self.major, self.minor, self.patch, released, tuple(_rank(part) for part in self.prerelease))

    def __lt__(self, other: BridgeVersion) -> bool:
        return self._key() < other._key()

    def __le__(self, other: BridgeVersion) -> bool:
        return self._key() <= other._key()

    def reaches(self, level: int) -> bool:
        """Whether this version is at least the release `level`.0.0 (a capability key of the horde's table)."""
        return BridgeVersion(level) <= self


ZERO = BridgeVersion(0)


def parse_bridge_version(text: str) -> BridgeVersion | None:
    """The version in `text`, or None when the horde could not parse it."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    prerelease = match["prerelease"]
    return BridgeVersion(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        tuple(prerelease.split(".")) if prerelease else (),
    )
