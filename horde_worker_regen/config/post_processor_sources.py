"""`post_processor_sources`: other places to download the level-13 post-processors' files from.

The worker downloads the eight level-13 post-processors (and the face detection and parsing
networks the two face restorers need) and strip_background's rembg model (`u2net.onnx`) from their
public URLs. An operator can point any of these files at a mirror (a LAN cache, a copy kept for when
GitHub is down) with an entry keyed by the post-processor's horde name, or `face_detection` /
`face_parsing` for the two helper files:

    post_processor_sources:
      4xNomos8kSC: {url: "http://cache.lan/4xNomos8kSC.pth", sha256: "07a7ccd6..."}
      strip_background: {url: "http://cache.lan/u2net.onnx"}
      face_detection: {url: "http://cache.lan/detection_Resnet50_Final.pth"}

An entry replaces the file's URL and sha256 together; the name on disk stays the worker's own.
Without `sha256`, the first complete download's hash is recorded and every later copy must match it.
The names are listed here because the configuration sits below the model catalogue
(`models/post_processor_files.py`); a test checks that the two lists agree.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

FACE_DETECTION_KEY = "face_detection"
FACE_PARSING_KEY = "face_parsing"
# The post-processors whose files the worker fetches, by the horde's names, in the catalogue's order:
# the eight of level 13, then strip_background (rembg's u2net.onnx).
POST_PROCESSOR_KEYS = (
    "4xNomos8kSC", "4xLSDIRplus", "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample", "4xNomos2_hq_dat2",
    "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer", "strip_background",
)  # fmt: skip
SOURCE_KEYS: tuple[str, ...] = (*POST_PROCESSOR_KEYS, FACE_DETECTION_KEY, FACE_PARSING_KEY)

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_EXAMPLE = "{url: https://mirror.example/4xNomos8kSC.pth, sha256: <64 hex digits>}"


def check_source_key(key: str) -> str:
    """`key` when it names a managed file; else ValueError with the closest key and every allowed one."""
    if key in SOURCE_KEYS:
        return key
    by_fold = {known.casefold(): known for known in SOURCE_KEYS}
    close = difflib.get_close_matches(key.casefold(), list(by_fold), n=1, cutoff=0.6)
    hint = f"did you mean '{by_fold[close[0]]}'? " if close else ""
    raise ValueError(
        f"unknown post-processor file {key!r}; {hint}allowed: {', '.join(SOURCE_KEYS)} (names as the horde writes them)"
    )


class PostProcessorSource(BaseModel):
    """Where one managed file is downloaded from instead of its public URL, and the sha256 it must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="An http:// or https:// URL serving the file.")
    sha256: str | None = Field(
        default=None,
        description="The file's sha256 (64 hex digits); left out, the first complete download's is recorded.",
    )

    @model_validator(mode="before")
    @classmethod
    def _is_a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"each entry must be a mapping with url and, optionally, sha256, e.g. {_EXAMPLE}")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
        except ValueError:  # a bad port or IPv6 address
            valid = False
        if not valid or any(character.isspace() or not character.isprintable() for character in value):
            raise ValueError("must be an http:// or https:// URL with a host (and a valid port), no spaces")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _SHA256.match(value):
            raise ValueError("must be a sha256: 64 hexadecimal digits (0-9, a-f); leave it out to record the first")
        return value.lower()


SourceKey = Annotated[str, AfterValidator(check_source_key)]
PostProcessorSources = dict[SourceKey, PostProcessorSource]
