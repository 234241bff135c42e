"""models_to_load / models_to_skip resolved against the reference fixture."""

from __future__ import annotations

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.sections import CustomModel
from horde_worker_regen.models.meta_instructions import MetaInstructionError, is_meta_instruction, resolve_models
from horde_worker_regen.models.reference import ModelReference
from horde_worker_regen.models.selection import select_from_reference

SD15 = ["Anything Diffusion", "Deliberate", "Deliberate Inpainting", "Dreamshaper", "stable_diffusion"]
SD21 = ["Stable Diffusion 2 Depth", "stable_diffusion_2.1"]
SDXL = ["AlbedoBase XL (SDXL)", "Juggernaut XL"]
LARGE = ["Flux.1-Schnell fp8 (Compact)", "Stable Cascade 1.0"]


def _load(reference: ModelReference, *entries: str, large: bool = False, skip: tuple[str, ...] = ()) -> list[str]:
    return resolve_models(list(entries), list(skip), reference, load_large_models=large).models


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("ALL SDXL", SDXL),
        ("ALL SDXL MODELS", SDXL),
        ("all sd15", SD15),
        ("ALL SD15 MODELS", SD15),
        ("ALL SD21", SD21),
        ("ALL INPAINTING", ["Deliberate Inpainting"]),
        ("ALL NSFW", ["Anything Diffusion", "Deliberate", "Deliberate Inpainting", "Juggernaut XL"]),
        (
            "ALL SFW",
            sorted(
                set(SD15 + SD21 + SDXL) - {"Anything Diffusion", "Deliberate", "Deliberate Inpainting", "Juggernaut XL"}
            ),
        ),
        ("ALL", sorted(SD15 + SD21 + SDXL)),
        ("ALL MODELS", sorted(SD15 + SD21 + SDXL)),
    ],
)
def test_all_meta_instructions(reference: ModelReference, entry: str, expected: list[str]) -> None:
    assert sorted(_load(reference, entry)) == sorted(expected)


def test_load_large_models_lets_meta_instructions_include_flux_and_cascade(reference: ModelReference) -> None:
    assert sorted(_load(reference, "ALL", large=True)) == sorted(SD15 + SD21 + SDXL + LARGE)
    selection = resolve_models(["ALL"], [], reference, load_large_models=False)
    assert not set(LARGE) & set(selection.models)
    assert any("load_large_models: true" in note for note in selection.notes)


def test_a_large_model_named_explicitly_is_kept(reference: ModelReference) -> None:
    assert _load(reference, "Stable Cascade 1.0") == ["Stable Cascade 1.0"]


def test_top_n_follows_usage(reference: ModelReference) -> None:
    # Flux is the third most used, but it is large: without load_large_models TOP 3 skips it.
    assert _load(reference, "TOP 3") == ["AlbedoBase XL (SDXL)", "Deliberate", "Juggernaut XL"]
    assert _load(reference, "TOP 3", large=True) == [
        "AlbedoBase XL (SDXL)",
        "Deliberate",
        "Flux.1-Schnell fp8 (Compact)",
    ]


def test_bottom_n_takes_the_least_used(reference: ModelReference) -> None:
    bottom = _load(reference, "BOTTOM 3")
    assert bottom == ["Deliberate Inpainting", "Stable Diffusion 2 Depth", "stable_diffusion_2.1"]


def test_top_n_without_usage_figures_says_why(reference: ModelReference) -> None:
    no_usage = ModelReference(records=reference.records, usage={})
    with pytest.raises(MetaInstructionError, match="usage figures"):
        resolve_models(["TOP 2"], [], no_usage, load_large_models=False)


def test_skip_accepts_names_and_meta_instructions(reference: ModelReference) -> None:
    loaded = _load(reference, "ALL", skip=("ALL SD15", "juggernaut xl"))
    assert sorted(loaded) == sorted([*SD21, "AlbedoBase XL (SDXL)"])


def test_names_match_without_regard_to_case_and_keep_their_reference_spelling(reference: ModelReference) -> None:
    assert _load(reference, "deliberate", "ALBEDOBASE XL (SDXL)") == ["Deliberate", "AlbedoBase XL (SDXL)"]


def test_duplicates_are_served_once(reference: ModelReference) -> None:
    assert _load(reference, "Deliberate", "ALL SD15")[:1] == ["Deliberate"]
    assert _load(reference, "Deliberate", "ALL SD15").count("Deliberate") == 1


def test_unknown_name_is_reported_with_closest_names(reference: ModelReference) -> None:
    selection = resolve_models(["Delibrate", "Deliberate", "Totally Unheard Of"], [], reference, False)
    assert selection.models == ["Deliberate"]
    assert selection.unknown["Delibrate"][0] == "Deliberate"
    assert "Totally Unheard Of" in selection.unknown


def test_inpainting_models_are_left_out_when_painting_is_off(reference: ModelReference) -> None:
    selection = resolve_models(["ALL SD15"], [], reference, False, allow_painting=False)
    assert "Deliberate Inpainting" not in selection.models
    assert any("Deliberate Inpainting" in note for note in selection.notes)


def test_custom_models_count_as_known(reference: ModelReference) -> None:
    data = BridgeData(
        models_to_load=["My Own Model", "Deliberate"],
        custom_models=[CustomModel(name="My Own Model", baseline="stable_diffusion_1", filepath="/m.safetensors")],
    )
    selection = select_from_reference(data, reference)
    assert selection.models == ["My Own Model", "Deliberate"]
    assert selection.unknown == {}
    assert (
        "My Own Model"
        in select_from_reference(data.model_copy(update={"models_to_load": ["ALL SD15"]}), reference).models
    )


@pytest.mark.parametrize("entry", ["ALL", "ALL SDXL MODELS", "top 5", "BOTTOM  2", "all inpainting"])
def test_meta_instruction_recognised(entry: str) -> None:
    assert is_meta_instruction(entry)


@pytest.mark.parametrize("entry", ["Deliberate", "ALL THE THINGS", "TOP", "TOP five", "Allure"])
def test_model_names_are_not_meta_instructions(entry: str) -> None:
    assert not is_meta_instruction(entry)


def test_a_post_processor_in_models_to_skip_is_not_an_unknown_model(reference: ModelReference) -> None:
    data = BridgeData(
        models_to_load=["Deliberate"], models_to_skip=["restoreformer", "Dreamshaper", "4xNomos", "Strip_Background"]
    )
    selection = select_from_reference(data, reference)
    assert selection.models == ["Deliberate"]
    assert list(selection.unknown) == ["4xNomos"]  # not a post-processor's name: still reported
    restoreformer, strip_background = selection.notes
    assert restoreformer == "'restoreformer' (a post-processor) is neither downloaded nor offered."
    assert strip_background.startswith("'Strip_Background' (a post-processor) is not downloaded")
