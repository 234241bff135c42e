"""The capability declarations of the inference backends, importable without loading any of them.

The main process reads these to build its `bridge_agent` and to refuse, at start-up, a backend
that this version does not ship.
"""

from __future__ import annotations

from horde_worker_regen.inference.backend import BackendCapabilities

# reGen capability version 1 (horde-api.md §3.9): what the pipeline itself handles with the fake
# backend: txt2img, img2img with source fetching, inpainting/outpainting with masks, batches, r2
# uploads and r2 source URLs; the remaining v1 features (karras, post-processors, clip_skip,
# hires_fix, tiling, controlnet flags) are parameters the fake accepts and passes through.
FAKE_CAPABILITY_VERSION = 1
FAKE_CAPABILITIES = BackendCapabilities(
    name="fake",
    version=FAKE_CAPABILITY_VERSION,
    promises=(
        "txt2img", "img2img", "inpainting", "outpainting", "batches", "r2", "r2_source", "karras",
        "post-processing (passed through)", "clip_skip", "hires_fix", "tiling", "controlnet (passed through)",
    ),
)  # fmt: skip

AVAILABLE_BACKENDS: dict[str, BackendCapabilities] = {"fake": FAKE_CAPABILITIES}


class BackendUnavailable(RuntimeError):
    """The configured backend is not part of this version."""


def capabilities_of(backend: str) -> BackendCapabilities:
    """The declaration of a backend this version ships, or BackendUnavailable with what to do."""
    found = AVAILABLE_BACKENDS.get(backend)
    if found is None:
        raise BackendUnavailable(
            f"inference_backend '{backend}' is not available in this version of the worker (it comes in a later "
            "one). To run the pipeline against a local horde, set inference_backend: fake and safety_backend: fake."
        )
    return found
