"""hordelib's errors, read as the fault breaker needs them: this job's alone, or every such job's.

hordelib raises plain `RuntimeError`/`ValueError`s whose text is all there is to go on. The ones it
raises before any work, about the model itself, are deterministic: "Model X not found on disk!" (the
file is missing), "... not found in model reference!" (unknown here), "... has no files in its reference
entry!" (unusable entry), and its checkpoint loader's "... is not available." / "file ... not found.".
A post-processor failing the same ways takes the post-processing feature down with it. A failure
inside ComfyUI reaches us only as "Pipeline failed to run": that stays transient (the rolling cap of
the breaker still bounds it). No hordelib import: the texts are matched, so this runs anywhere.
"""

from __future__ import annotations

import re

from horde_worker_regen.inference.backend import (
    FeatureFailed,
    FeatureUnsupported,
    InferenceError,
    ModelFileMissing,
    ModelUnloadable,
)

_MISSING = (
    re.compile(r"^Model (?P<name>.+) not found on disk!$"),
    re.compile(r"^Model (?P<name>.+) not found in model reference!$"),
    re.compile(r"^Model (?P<name>.+) is not available\.$"),
)
# The checkpoint loader names the file, not the model: "None file x.safetensors not found." (file type first).
_FILE_MISSING = (re.compile(r"^\w+ file (?P<name>.+) not found\.$"),)
_UNLOADABLE = (re.compile(r"^Model (?P<name>.+) has no files in its reference entry!$"),)
# The text of one error, at most this long, is matched (the rest is never needed).
MAX_TEXT = 2000


def _matches(patterns: tuple[re.Pattern[str], ...], text: str) -> str | None:
    for pattern in patterns:
        if (match := pattern.match(text)) is not None:
            return match["name"]
    return None


def generation_failure(error: Exception, model: str) -> InferenceError:
    """An error of `basic_inference` for a job on `model`, as the InferenceError to raise."""
    if isinstance(error, InferenceError):
        return error
    text = str(error).strip()[:MAX_TEXT]
    detail = text or type(error).__name__
    if _matches(_MISSING, text) == model or _matches(_FILE_MISSING, text) is not None:
        return ModelFileMissing(model, detail)
    if _matches(_UNLOADABLE, text) == model:
        return ModelUnloadable(model, detail)
    return InferenceError(f"hordelib: {type(error).__name__}: {detail}")


def post_processing_failure(error: Exception, name: str) -> InferenceError:
    """An error of post-processor `name`: its model missing makes the feature unsupported here, else failing."""
    text = str(error).strip()[:MAX_TEXT] or type(error).__name__
    if any(_matches(patterns, text) is not None for patterns in (_MISSING, _FILE_MISSING, _UNLOADABLE)):
        return FeatureUnsupported("post_processing", f"post-processor {name}: {text}")
    return FeatureFailed("post_processing", f"post-processor {name} failed: {text}")
