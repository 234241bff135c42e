"""Post-processor alchemy forms in the inference child: the source through one post-processor, as WebP."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from horde_worker_regen.config.sections import FakeBackendSettings
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.inference.fake import FakeInferenceBackend
from horde_worker_regen.inference.forms import ALCHEMY_FACEFIXER_STRENGTH, PostProcessForms
from horde_worker_regen.inference.post_processing_plan import facefixer_strength
from horde_worker_regen.jobs.alchemy import FormOutcome, FormRequest
from horde_worker_regen.processes.inference_child import InferenceChild
from horde_worker_regen.processes.messages import FormDone, RunForm


def _png(width: int = 40, height: int = 24, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 200, 30, 255)[: len(mode)]).save(buffer, "PNG")
    return buffer.getvalue()


def _forms(**settings: object) -> PostProcessForms:
    return PostProcessForms(FakeInferenceBackend(FakeBackendSettings.model_validate(settings)))


def _image(outcome: FormOutcome) -> Image.Image:
    assert outcome.ok and outcome.image is not None, outcome.error
    image = Image.open(io.BytesIO(outcome.image))
    image.load()
    return image


@pytest.mark.parametrize(
    ("form", "scale"),
    [("RealESRGAN_x4plus", 4), ("RealESRGAN_x2plus", 2), ("2xModernSpanimationV1", 2), ("4xNomos2_hq_dat2", 4),
     ("GFPGAN", 1), ("CodeFormers", 1), ("RestoreFormer", 1), ("strip_background", 1)],
)  # fmt: skip
def test_each_post_processor_gives_a_webp_of_its_scale(form: str, scale: int) -> None:
    outcome = _forms().run(FormRequest("f-1", form, _png(40, 24)))
    image = _image(outcome)
    assert (outcome.form_id, outcome.form, outcome.result) == ("f-1", form, None)
    assert (image.format, image.size) == ("WEBP", (40 * scale, 24 * scale))


def test_background_removal_keeps_an_alpha_channel() -> None:
    buffer = io.BytesIO()
    source = Image.new("RGB", (32, 32), (0, 0, 0))
    source.paste((250, 250, 250), (8, 8, 24, 24))
    source.save(buffer, "PNG")
    image = _image(_forms().run(FormRequest("f", "strip_background", buffer.getvalue())))
    assert image.mode == "RGBA"
    assert image.getchannel("A").getpixel((0, 0)) == 0 and image.getchannel("A").getpixel((16, 16)) == 255


@pytest.mark.parametrize(
    ("source", "why"),
    [(b"not an image", "does not decode"), (_png(5000, 4000), "pixels"), (_png()[:60], "does not decode")],
)
def test_a_source_that_cannot_be_used_fails_the_form_not_the_child(source: bytes, why: str) -> None:
    forms = _forms()
    outcome = forms.run(FormRequest("f", "RealESRGAN_x4plus", source))
    assert not outcome.ok and outcome.error is not None and why in outcome.error
    assert forms.run(FormRequest("g", "RealESRGAN_x4plus", _png())).ok  # the next one runs


@pytest.mark.parametrize("form", ["caption", "vectorize", "Deliberate"])
def test_a_form_an_inference_child_does_not_run_is_refused(form: str) -> None:
    outcome = _forms().run(FormRequest("f", form, _png()))
    assert outcome.error is not None and "does not run" in outcome.error


def test_a_post_processor_that_fails_fails_its_form() -> None:
    outcome = _forms(failing_post_processors=["GFPGAN"]).run(FormRequest("f", "GFPGAN", _png()))
    assert outcome.error is not None and "produced no image" in outcome.error


@pytest.mark.parametrize(
    ("payload", "strength"),
    [({}, ALCHEMY_FACEFIXER_STRENGTH), ({"facefixer_strength": "0.8"}, 0.8), ({"facefixer_strength": "2"}, 1.0),
     ({"facefixer_strength": "nan"}, ALCHEMY_FACEFIXER_STRENGTH), ({"facefixer_strength": "x"}, 0.5)],
)  # fmt: skip
def test_a_form_s_face_fixer_strength_defaults_to_the_legacy_alchemist_s(
    payload: dict[str, str], strength: float
) -> None:
    assert facefixer_strength(payload, default=ALCHEMY_FACEFIXER_STRENGTH) == strength


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=5))
def test_any_payload_of_strings_reads_as_a_strength_in_range(payload: dict[str, str]) -> None:
    assert 0.0 <= facefixer_strength(payload, default=ALCHEMY_FACEFIXER_STRENGTH) <= 1.0


def test_the_inference_child_answers_run_form_with_form_done() -> None:
    child = InferenceChild(InferenceCore(FakeInferenceBackend(FakeBackendSettings())), 7)
    answer = child.handle(RunForm(7, FormRequest("f-9", "RealESRGAN_x2plus", _png(16, 16))))
    assert isinstance(answer, FormDone) and answer.incarnation == 7
    assert _image(answer.outcome).size == (32, 32)
