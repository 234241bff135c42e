"""The capability declarations of the inference backends, importable without loading any of them.

A backend's `version` is the highest reGen capability level it implements. The main process reads
these to decide the level its `bridge_agent` claims (`worker/bridge_level.py`: a level whose
features are not all servable here right now is not claimed) and to refuse, at start-up, a backend
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


# The hordelib backend implements level 13: horde-engine 2.22 runs every job kind up to Flux (LoRAs by
# version, remix with extra source images, Stable Cascade 2-pass, the qr_code workflow, layer diffuse),
# and the worker runs level 13's eight post-processors itself with spandrel (horde-engine 2.22 and
# horde_sdk 0.17 do not know them). Level 13 is the most it *can* claim: the claim at run time follows
# what is servable on this machine (`worker/bridge_level.py`), 9 until every one of the eight is on
# disk and loads. Beyond the table, it also does txt2img, outpainting and batches (n_iter).
POST_PROCESSOR_LEVEL = 13  # the level that adds the eight post-processors the worker runs with spandrel
HORDELIB_CAPABILITY_VERSION = POST_PROCESSOR_LEVEL
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
